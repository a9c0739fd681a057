import numpy as np
import pytest

from defect_tf.data.labels import (
    NA,
    LabelTable,
    format_labels,
    header_fingerprint,
    known_mask,
    label_counts,
    parse_labels,
    summarize,
)
from defect_tf.errors import LabelError


def write(tmp_path, text, name="labels.txt"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_parses_values_and_na_spellings_into_float_matrix(tmp_path):
    table = parse_labels(write(tmp_path, "image scratch dent\na.png 1 0\nb.png NA na\nc.png nA 1\n"
                                         "d.png N/A NaN\ne.png -1 n/a\n"))
    assert table.attributes == ["scratch", "dent"]
    assert table.images == ["a.png", "b.png", "c.png", "d.png", "e.png"]
    assert table.values.dtype == np.float32
    np.testing.assert_array_equal(table.values, [[1, 0], [NA, NA], [NA, 1], [NA, NA], [NA, NA]])


@pytest.mark.parametrize("text", [
    "image\tscratch\tdent\na.png\t1\tNA\n",
    "image,scratch,dent\na.png, 1 ,NA\n",
    "image   scratch dent\r\na.png  1   NA  \r\n\r\n",
    "\ufeffimage scratch dent\na.png 1 NA\n",
])
def test_accepts_tab_comma_space_crlf_and_bom(tmp_path, text):
    table = parse_labels(write(tmp_path, text))
    assert table.attributes == ["scratch", "dent"]
    assert table.images == ["a.png"]
    np.testing.assert_array_equal(table.values, [[1, NA]])


def test_comma_separated_paths_may_contain_spaces(tmp_path):
    table = parse_labels(write(tmp_path, "image,scratch\nmy photos/a b.png,1\n"))
    assert table.images == ["my photos/a b.png"]


def test_a_space_separated_file_takes_commas_in_file_names(tmp_path):
    table = parse_labels(write(tmp_path, "image scratch dent\nimg,1.png 1 0\nb.png 0 NA\n"))
    assert table.images == ["img,1.png", "b.png"]
    np.testing.assert_array_equal(table.values, [[1, 0], [0, NA]])


def test_a_wrong_field_count_says_how_the_file_is_separated(tmp_path):
    with pytest.raises(LabelError, match=r"labels.txt:2: expected 3 fields \(image \+ 2 attributes\), found 4 "
                                         r"\(fields are separated by spaces, as its header is; a file name with spaces "
                                         r"needs a comma-separated file\)"):
        parse_labels(write(tmp_path, "image scratch dent\nmy photo.png 1 0\n"))


@pytest.mark.parametrize("spelling", ["./img_000.png", "a/../img_000.png", "img_000.png", ".//img_000.png"])
def test_one_image_spelled_two_ways_is_one_row(tmp_path, spelling):
    table = parse_labels(write(tmp_path, f"image scratch\nimg_000.png 1\n{spelling} 1\nimg_001.png 0\n"))
    assert table.images == ["img_000.png", "img_001.png"]
    assert len(table.notes) == 1 and "img_000.png" in table.notes[0]
    with pytest.raises(LabelError, match=r"labels.txt:3: img_000.png .*is listed again with different labels"):
        parse_labels(write(tmp_path, f"image scratch\nimg_000.png 1\n{spelling} 0\n"))


def test_every_malformed_line_is_reported_with_file_and_line(tmp_path):
    path = write(tmp_path, "image scratch dent\na.png 1 0\nb.png 1\nc.png 1 yes\nd.png 0 0\n")
    with pytest.raises(LabelError) as error:
        parse_labels(path)
    message = str(error.value)
    assert f"{path}:3: expected 3 fields" in message
    assert f"{path}:4: values must be 1, 0 or NA (or N/A, NaN, -1); found dent='yes'" in message
    assert ":2:" not in message and ":5:" not in message


@pytest.mark.parametrize("text, expected", [
    ("", "label file is empty"),
    ("image\na.png\n", "header names no attributes"),
    ("image scratch scratch\na.png 1 0\n", "attribute names repeated in the header: scratch"),
    ("a.png 1 0\nb.png 0 1\n", "looks like data, not a header"),
    ("image scratch\n", "no image rows follow"),
])
def test_structural_mistakes_are_label_errors(tmp_path, text, expected):
    with pytest.raises(LabelError, match=expected):
        parse_labels(write(tmp_path, text))


def test_missing_file_is_a_label_error(tmp_path):
    with pytest.raises(LabelError, match="label file not found"):
        parse_labels(tmp_path / "nope.txt")


def test_format_round_trips(tmp_path):
    table = LabelTable(["a", "b"], ["x.png", "y.png"], np.array([[1, NA], [0, 1]], np.float32))
    again = parse_labels(write(tmp_path, format_labels(table)))
    assert again.attributes == table.attributes and again.images == table.images
    np.testing.assert_array_equal(again.values, table.values)


def test_known_mask_counts_and_summary():
    values = np.array([[1, NA], [0, 1], [NA, NA]], np.float32)
    np.testing.assert_array_equal(known_mask(values), [[True, False], [True, True], [False, False]])
    counts = label_counts(values)
    np.testing.assert_array_equal(counts["positive"], [1, 1])
    np.testing.assert_array_equal(counts["negative"], [1, 0])
    np.testing.assert_array_equal(counts["na"], [1, 2])
    text = summarize(LabelTable(["scratch", "dent"], ["a", "b", "c"], values))
    assert text.splitlines()[0] == "3 images, 2 attributes"
    assert text.splitlines()[2].split() == ["scratch", "1", "1", "1"]
    assert text.splitlines()[3].split() == ["dent", "1", "0", "2"]
    assert summarize(LabelTable(["defect"], ["a"], values[:1, :1])).splitlines()[0] == "1 image, 1 attribute"


def test_identical_duplicate_rows_are_kept_once_with_a_note(tmp_path):
    path = write(tmp_path, "image a b\nx.png 1 0\ny.png 0 0\nx.png 1 0\n")
    table = parse_labels(path)
    assert table.images == ["x.png", "y.png"]
    assert table.notes == (f"{path}:4: x.png is listed again with the same labels as line 2; using it once",)


def test_conflicting_duplicate_rows_are_an_error(tmp_path):
    path = write(tmp_path, "image a b\nx.png 1 0\nx.png 0 0\n")
    with pytest.raises(LabelError, match=f"{path}:3: x.png is listed again with different labels than line 2"):
        parse_labels(path)


def test_fuzzed_label_files_parse_or_raise_label_error_only(tmp_path):
    """Random bytes and random edits of a valid file: never anything but a table or a LabelError."""
    rng = np.random.default_rng(0)
    valid = "image scratch dent\na.png 1 0\nb.png NA 1\nc.png 0 na\n"
    pieces = ["\t", ",", " ", "\n", "\r\n", "NA", "1", "0", "-1", "x", "\ufeff", "\x00", "é", "", "image"]
    for case in range(400):
        if case % 4 == 0:
            data = rng.integers(0, 256, rng.integers(0, 200)).astype(np.uint8).tobytes()
        else:
            text = list(valid)
            for _ in range(rng.integers(1, 6)):
                position = int(rng.integers(0, len(text) + 1))
                if rng.random() < 0.5 and text:
                    del text[min(position, len(text) - 1)]
                else:
                    text.insert(position, pieces[rng.integers(len(pieces))])
            data = "".join(text).encode("utf-8")
        path = tmp_path / f"fuzz{case}.txt"
        path.write_bytes(data)
        try:
            table = parse_labels(path)
        except LabelError:
            continue
        assert table.values.shape == (len(table.images), len(table.attributes))
        assert set(np.unique(table.values)) <= {NA, 0.0, 1.0}


def test_header_fingerprint_depends_on_names_and_order():
    assert header_fingerprint(["a", "b"]) == header_fingerprint(["a", "b"])
    assert len({header_fingerprint(["a", "b"]), header_fingerprint(["b", "a"]), header_fingerprint(["a", "c"])}) == 3


def test_only_keeps_the_rows_of_the_named_images_in_table_order():
    table = LabelTable(["a"], ["x.png", "y.png", "z.png"], np.array([[1], [0], [NA]], np.float32))
    part = table.only(["z.png", "x.png", "not_listed.png"])
    assert part.images == ["x.png", "z.png"]
    np.testing.assert_array_equal(part.values, [[1], [NA]])
    assert table.only([]).images == []
