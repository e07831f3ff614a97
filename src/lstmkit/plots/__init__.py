"""Pictures: training curves, forecasts and gate plots. The only package that imports matplotlib."""
