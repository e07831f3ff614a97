"""Labelled-text readers on files with rt-polarity's quirks and on small tables and folders; word vocabulary;
stratified splits and folds."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from conftest import DATA

from lstmkit.data.labelled_text import (
    class_names_for,
    read_class_files,
    read_folder,
    read_text_file,
    read_text_table,
    stratified_folds,
    stratified_split,
    text_lines,
)
from lstmkit.data.vocab import WordVocab, tokenize
from lstmkit.errors import InputError

REVIEWS = DATA / "reviews"


@pytest.fixture(scope="module")
def rt_files():
    """Review snippets, one per line, in Windows-1252 with its bytes 0x85, 0x96 and 0x97, as rt-polarity."""
    return {"neg": REVIEWS / "reviews.neg", "pos": REVIEWS / "reviews.pos"}


def test_cp1252_class_files_are_read_one_text_per_line(rt_files):
    data = read_class_files(rt_files, encoding="cp1252")
    assert data.class_names == ["neg", "pos"]
    lines = {name: path.read_bytes().count(b"\n") for name, path in rt_files.items()}  # one text a line
    assert Counter(data.labels) == {0: lines["neg"], 1: lines["pos"]}
    raw_lines = rt_files["pos"].read_bytes().split(b"\n")
    for byte, char in ((b"\x85", "\u2026"), (b"\x96", "\u2013"), (b"\x97", "\u2014")):
        number = next(i for i, line in enumerate(raw_lines) if byte in line)
        assert data.texts[lines["neg"] + number] == raw_lines[number].decode("cp1252")  # pos texts follow neg
        assert char in data.texts[lines["neg"] + number]


def test_splitting_on_newline_only_keeps_the_lines_where_splitlines_breaks_them(rt_files):
    raw = rt_files["pos"].read_bytes()
    latin1 = raw.decode("latin-1")  # 0x85 becomes U+0085, a line break to Python
    assert len(text_lines(latin1)) == raw.count(b"\n")
    assert len(latin1.splitlines()) > raw.count(b"\n")
    assert text_lines("a\r\nb\u0085c\r\nlast") == ["a", "b\u0085c", "last"]


def test_cp1252_file_without_encoding_is_one_line_naming_line_and_cp1252(rt_files):
    with pytest.raises(InputError) as error:
        read_text_file(rt_files["pos"])
    message = str(error.value)
    assert "reviews.pos: line " in message and "not UTF-8" in message and "--encoding cp1252" in message
    assert "\n" not in message
    line = int(message.split("line ")[1].split(",")[0])
    raw = rt_files["pos"].read_bytes().split(b"\n")[line - 1]
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")


@pytest.mark.parametrize(
    "content,encoding,message",
    [
        (None, None, "no such file"),
        (b"", None, "the file is empty"),
        (b" \n\n", None, "the file is empty"),
        (b"caf\xe9 \x81\n", "cp1252", "line 1, byte 6: 0x81 is not cp1252 text"),
        (b"ok\x00\n", None, "NUL characters"),
        (b"ok\n", "klingon", "unknown encoding 'klingon'"),
    ],
)
def test_unreadable_files_raise_input_error(tmp_path, content, encoding, message):
    path = tmp_path / "texts.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        read_text_file(path, encoding)


def test_class_files_are_named_by_suffix_or_stem():
    assert class_names_for([Path("d/rt.pos"), Path("d/rt.neg")]) == ["pos", "neg"]
    assert class_names_for([Path("good.txt"), Path("bad.txt"), Path("meh.txt")]) == ["good", "bad", "meh"]
    with pytest.raises(InputError, match="distinct names"):
        class_names_for([Path("a/x.txt"), Path("b/x.txt")])


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_tsv_with_header_and_commas_in_the_text(tmp_path):
    path = write(
        tmp_path,
        "reviews.tsv",
        "id\treview\tstars\n1\tGreat, truly great.\t5\n2\tAwful, just awful.\t1\n3\tFine, I guess.\t3\n"
        "4\tLoved it, again and again.\t5\n",
    )
    data = read_text_table(path)
    assert data.class_names == ["1", "3", "5"]  # numeric labels in numeric order
    assert data.texts[0] == "Great, truly great." and len(data.texts) == 4
    assert [data.class_names[label] for label in data.labels] == ["5", "1", "3", "5"]


def test_csv_without_header_quoted_text_first_row_is_data(tmp_path):
    path = write(
        tmp_path,
        "plain.csv",
        'pos,"a fine, warm film"\nneg,"cold and, sadly, dull"\npos,"warm"\r\nneg,"dull, dull, dull"\n',
    )
    data = read_text_table(path)
    assert data.texts == ["a fine, warm film", "cold and, sadly, dull", "warm", "dull, dull, dull"]
    assert data.class_names == ["neg", "pos"] and data.labels == [1, 0, 1, 0]


def test_semicolons_and_columns_chosen_by_name_or_number(tmp_path):
    path = write(tmp_path, "t.txt", "topic;text;lang\nsport;the match went on;en\nart;a quiet painting;en\n")
    by_name = read_text_table(path, text_column="text", label_column="topic")
    assert by_name.texts == ["the match went on", "a quiet painting"] and by_name.class_names == [
        "art",
        "sport",
    ]
    by_number = read_text_table(path, text_column="2", label_column="1")
    assert by_number.texts == by_name.texts and by_number.labels == by_name.labels
    comma = write(tmp_path, "c.csv", "x;y\n1;a b\n2;c d\n")
    assert read_text_table(comma, delimiter=";", label_column="1").texts == ["a b", "c d"]


def test_a_missing_column_lists_the_columns_that_exist(tmp_path):
    path = write(tmp_path, "t.csv", "text,label\nnice,pos\nbad,neg\n")
    with pytest.raises(
        InputError, match=r"no column 'sentiment' \(--label-column\); the columns are 'text', 'label'"
    ):
        read_text_table(path, label_column="sentiment")


def test_ragged_row_and_single_class_name_the_problem(tmp_path):
    ragged = write(tmp_path, "r.csv", "text,label\nnice,pos\nbad,neg,extra\nok,pos\n")
    with pytest.raises(InputError, match="line 3 has 3 fields, line 1 has 2"):
        read_text_table(ragged)
    single = write(tmp_path, "s.csv", "text,label\nnice,pos\ngood,pos\nfine,pos\n")
    with pytest.raises(InputError, match="only the class 'pos'; a classifier needs .* two classes"):
        read_text_table(single)


def test_folder_with_a_subfolder_per_class(tmp_path):
    for label, texts in {
        "spam": ["buy now", "cheap pills"],
        "ham": ["see you at 5"],
        "news": ["rain"],
    }.items():
        (tmp_path / label).mkdir()
        for number, text in enumerate(texts):
            write(tmp_path / label, f"{number}.txt", text)
    (tmp_path / ".hidden").mkdir()
    data = read_folder(tmp_path)
    assert data.class_names == ["ham", "news", "spam"]
    assert sorted(zip(data.labels, data.texts)) == [
        (0, "see you at 5"),
        (1, "rain"),
        (2, "buy now"),
        (2, "cheap pills"),
    ]
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty: holds no files"):
        read_folder(tmp_path)


def test_tokens_and_vocabulary():
    assert tokenize("It's NOT bad, really!") == ["it's", "not", "bad", ",", "really", "!"]
    vocab = WordVocab.from_texts(["good good film", "bad film", "good"], min_count=2)
    assert vocab.words == ["<pad>", "<unk>", "good", "film"]  # most frequent first; "bad" seen once
    assert vocab.encode("Good bad FILM") == [2, 1, 3]
    assert vocab.encode("?!") == [1, 1]  # punctuation is tokens too, unknown here
    assert vocab.encode("") == [1]  # an empty text still has one step for the LSTM


@pytest.mark.parametrize("k,seed", [(10, 0), (3, 7)])
def test_stratified_folds_partition_the_data_and_keep_the_class_mix(k, seed):
    labels = [0] * 53 + [1] * 31 + [2] * 7
    folds = stratified_folds(labels, k, seed)
    assert sorted(i for fold in folds for i in fold) == list(range(len(labels)))  # each index exactly once
    assert max(map(len, folds)) - min(map(len, folds)) <= 1
    for label, total in Counter(labels).items():
        per_fold = [sum(labels[i] == label for i in fold) for fold in folds]
        assert max(per_fold) - min(per_fold) <= 1 and sum(per_fold) == total
    assert stratified_folds(labels, k, seed) == folds
    assert stratified_folds(labels, k, seed + 1) != folds


def test_stratified_split_holds_out_a_fraction_of_each_class():
    labels = [0] * 80 + [1] * 20
    kept, held = stratified_split(labels, 0.1, seed=3)
    assert sorted(kept + held) == list(range(100))
    assert Counter(labels[i] for i in held) == {0: 8, 1: 2}
    assert stratified_split(labels, 0.0, seed=3) == (list(range(100)), [])


# ---- quotes that do not open a field ----------------------------------------------------------------------
LITERAL_QUOTES = (
    '"Wow" she said, and so will you\tpos\n'
    'a "so-called" comedy that never lands\tneg\n'
    '"unclosed, this rant goes on\tneg\n'
    "plain and warm\tpos\n"
)


def test_a_tsv_whose_quotes_are_text_is_read_line_by_line(tmp_path):
    path = write(tmp_path, "quotes.tsv", LITERAL_QUOTES)
    data = read_text_table(path)
    assert data.texts == [line.split("\t")[0] for line in LITERAL_QUOTES.splitlines()]
    assert [data.class_names[k] for k in data.labels] == ["pos", "neg", "neg", "pos"]
    assert data.read_as.startswith("tab-delimited, read line by line with quotes as text (3 lines")
    assert read_text_table(path, quoting="none").texts == data.texts
    with pytest.raises(InputError, match=r"quotes\.tsv: line \d+: .*--quoting none"):
        read_text_table(path, quoting="csv")


def test_csv_quoting_is_kept_where_the_file_follows_it(tmp_path):
    text = 'text,label\n"a fine, warm film",pos\n"two lines:\nstill one ""review""",neg\nplain,pos\n'
    path = write(tmp_path, "quoted.csv", text)
    data = read_text_table(path)
    assert data.texts == ["a fine, warm film", 'two lines:\nstill one "review"', "plain"]
    assert data.read_as == "comma-delimited, CSV quoting"
    with pytest.raises(InputError, match="line 2 has 3 fields, line 1 has 2"):
        read_text_table(path, quoting="none")


def test_quotes_that_would_merge_lines_are_read_as_the_lines_mean(tmp_path):
    """CSV quoting would read these two lines as one row whose text holds a tab and a line break."""
    path = write(tmp_path, "merge.tsv", '"Great\tpos\nokay"\tneg\nfine\tpos\nbad\tneg\n')
    data = read_text_table(path)
    assert data.texts == ['"Great', 'okay"', "fine", "bad"] and "line by line" in data.read_as
    merged = read_text_table(path, quoting="csv")
    assert merged.texts[0] == "Great\tpos\nokay" and len(merged.texts) == 3
