"""Every data layout becomes the same label table: a label file, a class CSV, class folders (with or without
train/ val/ test/), and two folders as one binary attribute."""

import numpy as np
import pytest

from defect_tf.data.labels import NA
from defect_tf.data.sources import binary_from_classes, load_source, read_source
from defect_tf.errors import LabelError
from defect_tf.tasks import task_labels


def touch(root, *names):
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")  # the layout is read from names; images are checked later
    return root


def test_class_folders_are_one_hot_rows_in_name_order(tmp_path):
    touch(tmp_path, "scratch/b.png", "scratch/a.JPG", "dent/c.jpeg", "dent/sub/d.bmp", "dent/notes.txt",
          ".hidden/e.png", "dent/.f.png")
    source = read_source(tmp_path, None)
    assert source.layout == "class folders" and source.split is None and source.problems == []
    assert source.table.attributes == ["dent", "scratch"]
    assert source.table.images == ["dent/c.jpeg", "dent/sub/d.bmp", "scratch/a.JPG", "scratch/b.png"]
    np.testing.assert_array_equal(source.table.values, [[1, 0], [1, 0], [0, 1], [0, 1]])
    assert task_labels(source, None)[0].name == "multiclass"  # one class per image: multi-class by default


def test_train_val_test_folders_are_the_split(tmp_path):
    touch(tmp_path, "train/ok/1.png", "train/bad/2.png", "test/ok/3.png", "test/bad/4.png")
    source = read_source(tmp_path, None)
    assert source.table.attributes == ["bad", "ok"]
    assert source.split == {"train/ok/1.png": "train", "train/bad/2.png": "train", "test/ok/3.png": "test",
                            "test/bad/4.png": "test"}


def test_class_folders_next_to_split_folders_or_a_single_class_are_refused(tmp_path):
    touch(tmp_path, "train/ok/1.png", "train/bad/2.png", "stray/3.png")
    with pytest.raises(LabelError, match=r"next to train/ val/ test/ there are other folders \(stray\)"):
        load_source(tmp_path, None)
    with pytest.raises(LabelError, match="expected one sub-folder of images per class .* found 1 class folder"):
        load_source(touch(tmp_path / "one", "only/1.png"), None)


def test_a_class_csv_is_one_hot_with_empty_or_na_classes_unknown(tmp_path):
    (tmp_path / "labels.csv").write_text("filename,label\na.png,dent\nb.png,scratch\nc.png,\nd.png,NA\n"
                                         "a.png,dent\n")
    source = load_source(tmp_path, tmp_path / "labels.csv")
    assert source.layout == "class CSV" and source.table.attributes == ["dent", "scratch"]
    np.testing.assert_array_equal(source.table.values, [[1, 0], [0, 1], [NA, NA], [NA, NA]])
    assert "a.png is listed again with the same class" in source.table.notes[0]
    (tmp_path / "clash.csv").write_text("path,class\na.png,dent\na.png,scratch\n")
    with pytest.raises(LabelError, match=r"a.png is listed again with another class \(dent, scratch\)"):
        load_source(tmp_path, tmp_path / "clash.csv")


def test_a_class_csv_with_many_problems_lists_the_first_twenty_and_counts_the_rest(tmp_path):
    rows = "".join(f"{i}.png,dent\n{i}.png,scratch\n" for i in range(25))
    (tmp_path / "clash.csv").write_text("path,class\n" + rows)
    with pytest.raises(LabelError) as error:
        load_source(tmp_path, tmp_path / "clash.csv")
    lines = str(error.value).splitlines()
    assert len(lines) == 21 and "0.png is listed again" in lines[0] and lines[-1] == "... and 5 more problems"


def test_a_label_file_stays_multilabel_by_default(tmp_path):
    (tmp_path / "labels.txt").write_text("image scratch dent\na.png 1 1\nb.png 0 NA\n")
    source = load_source(tmp_path, tmp_path / "labels.txt")
    assert source.layout == "label file" and task_labels(source, None)[0].name == "multilabel"


@pytest.mark.parametrize("folders, detected", [(["damaged", "intact"], "damaged"), (["good", "scratch"], "scratch"),
                                               (["a_defect", "b_defect"], "b_defect")])
def test_two_folders_as_binary_detect_the_folder_that_is_not_the_good_one(tmp_path, folders, detected):
    touch(tmp_path, f"{folders[0]}/1.png", f"{folders[1]}/2.png", f"{folders[1]}/3.png")
    task, source, problems = task_labels(read_source(tmp_path, None), "binary")
    assert (task.name, problems, source.table.attributes) == ("binary", [], [detected])
    expected = [[1], [0], [0]] if detected == folders[0] else [[0], [1], [1]]
    np.testing.assert_array_equal(source.table.values, expected)


def test_binary_with_more_than_two_folders_says_why_not(tmp_path):
    touch(tmp_path, "a/1.png", "b/2.png", "c/3.png")
    source = read_source(tmp_path, None)
    assert binary_from_classes(source) is source
    assert "exactly one attribute" in task_labels(source, "binary")[2][0]
