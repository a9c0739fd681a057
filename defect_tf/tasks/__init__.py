"""Tasks by name: what a model's outputs mean (multi-label attributes, one binary attribute, or one class of many)."""

from dataclasses import replace

from defect_tf.data.labels import LabelTable
from defect_tf.data.sources import LabelSource, binary_from_classes
from defect_tf.decisions import DEFAULT_TASK
from defect_tf.tasks.base import Task
from defect_tf.tasks.binary import Binary
from defect_tf.tasks.multiclass import MultiClass
from defect_tf.tasks.multilabel import MultiLabel

TASKS: dict[str, Task] = {task.name: task for task in (MultiLabel(), MultiClass(), Binary())}


def get_task(name: str) -> Task:
    """Look a task up by name; an unknown name lists the known ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; choose one of: {', '.join(TASKS)}") from None


def task_labels(source: LabelSource, task_name: str | None,
                positive: str | None = None) -> tuple[Task, LabelSource, list[str]]:
    """The task a run trains (`task_name`, or without one: multi-class for a layout of one class per image,
    else multi-label), the labels as that task reads them, and what about them it cannot train on.
    `positive`: with --task binary and two classes, the defect class (else the class names decide)."""
    task = get_task(task_name or ("multiclass" if source.one_class_per_image else DEFAULT_TASK))
    problems = []
    if positive is not None and not (task.name == "binary" and source.one_class_per_image):
        problems.append(f"--positive {positive}: only for --task binary with two class folders or a class CSV "
                        "(a label file's 1 and 0 already say which images show the defect)")
    elif task.name == "binary" and source.one_class_per_image:
        source, problems = binary_from_classes(source, positive)
    table = source.table
    if not problems and table.attributes:
        problems = task.label_problems(table)
    if not table.attributes:  # nothing to prepare: the problems say why
        return task, source, problems or [f"no {'classes' if source.one_class_per_image else 'attributes'} to learn"]
    prepared = LabelTable(table.attributes, table.images, task.prepare(table.values), table.notes)
    return task, replace(source, table=prepared), problems
