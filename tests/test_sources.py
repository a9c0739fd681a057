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
                                               (["defective", "good_samples"], "defective"),
                                               (["OK", "NG"], "NG"), (["no_defect", "scratched"], "scratched"),
                                               (["defect", "non-defective"], "defect")])
def test_two_folders_as_binary_detect_the_folder_whose_name_says_defect_or_not_intact(tmp_path, folders, detected):
    touch(tmp_path, f"{folders[0]}/1.png", f"{folders[1]}/2.png", f"{folders[1]}/3.png")
    task, source, problems = task_labels(read_source(tmp_path, None), "binary")
    assert (task.name, problems, source.table.attributes) == ("binary", [], [detected])
    intact = next(name for name in folders if name != detected)
    assert f"the defect class is {detected!r}, {intact!r} is intact (--positive NAME to choose)" in source.layout
    expected = [[float(image.startswith(f"{detected}/"))] for image in source.table.images]
    np.testing.assert_array_equal(source.table.values, expected)


@pytest.mark.parametrize("folders", [["good", "ok"], ["dent", "scratch"], ["a_defect", "b_defect"]])
def test_two_folders_whose_names_do_not_tell_the_defect_are_refused_until_positive_names_it(tmp_path, folders):
    touch(tmp_path, f"{folders[0]}/1.png", f"{folders[1]}/2.png")
    _, _, problems = task_labels(read_source(tmp_path, None), "binary")
    assert problems == [f"--task binary: the class names {folders[0]!r} and {folders[1]!r} do not say which one is the "
                        f"defect to detect; name it with --positive {folders[0]} (or --positive {folders[1]})"]
    _, source, problems = task_labels(read_source(tmp_path, None), "binary", positive=folders[0])
    assert problems == [] and source.table.attributes == [folders[0]]
    np.testing.assert_array_equal(source.table.values, [[1], [0]])


def test_positive_must_name_one_of_the_classes_and_only_serves_binary_class_layouts(tmp_path):
    touch(tmp_path, "good/1.png", "bad/2.png")
    assert task_labels(read_source(tmp_path, None), "binary", positive="scratch")[2] == [
        "--positive scratch: not one of the two classes (bad, good)"]
    assert "only for --task binary" in task_labels(read_source(tmp_path, None), "multiclass", positive="bad")[2][0]


def test_binary_with_more_than_two_folders_says_why_not(tmp_path):
    touch(tmp_path, "a/1.png", "b/2.png", "c/3.png")
    source = read_source(tmp_path, None)
    assert binary_from_classes(source) == (source, [])
    assert "exactly one attribute" in task_labels(source, "binary")[2][0]


def test_images_in_a_symlinked_sub_folder_belong_to_their_class(tmp_path):
    touch(tmp_path, "elsewhere/1.png", "elsewhere/2.png", "data/good/3.png")
    (tmp_path / "data" / "scratch").mkdir()
    (tmp_path / "data" / "scratch" / "batch7").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "elsewhere" / "loop").symlink_to(tmp_path / "elsewhere")  # a link loop ends
    source = read_source(tmp_path / "data", None)
    assert source.problems == [] and source.table.attributes == ["good", "scratch"]
    assert source.table.images == ["good/3.png", "scratch/batch7/1.png", "scratch/batch7/2.png"]


@pytest.mark.parametrize("contents, said", [([], "scratch/ is empty"),
                                            (["a.heic", "b.txt"], "scratch/ holds no image the tool reads (JPEG, PNG, "
                                                                  "BMP, GIF, WebP or TIFF), only 2 other file(s), e.g. "
                                                                  "a.heic, b.txt")])
def test_a_class_folder_without_images_is_named_not_dropped(tmp_path, contents, said):
    touch(tmp_path, "good/1.png", "dent/2.png", *(f"scratch/{name}" for name in contents))
    (tmp_path / "scratch").mkdir(exist_ok=True)
    source = read_source(tmp_path, None)
    assert source.problems == [f"class folder {said}: add its images or remove it"]


def test_webp_and_tiff_photos_count_as_images(tmp_path):
    touch(tmp_path, "good/1.webp", "dent/2.tif", "dent/3.TIFF")
    assert read_source(tmp_path, None).table.images == ["dent/2.tif", "dent/3.TIFF", "good/1.webp"]


def test_an_image_name_with_a_line_break_is_refused_before_it_breaks_split_txt(tmp_path):
    touch(tmp_path, "good/1.png", "dent/2.png", "dent/new\nline.png")
    source = read_source(tmp_path, None)
    assert source.problems == [f"{tmp_path}: 1 image name(s) hold a line break, which no list file can hold on one "
                               "line, e.g. 'dent/new\\nline.png'; rename them"]
    (tmp_path / "labels.csv").write_text('image,class\n"a\u2028b.png",dent\nc.png,good\n')
    assert "hold a line break" in read_source(tmp_path, tmp_path / "labels.csv").problems[0]
