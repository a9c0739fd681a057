"""Tasks by name: what a model's outputs mean (multi-label attributes, one binary attribute, or one class of many)."""

from dataclasses import replace

from defect_tf.data.labels import LabelTable
from defect_tf.data.sources import LabelSource, binary_from_classes
from defect_tf.tasks.base import Task
from defect_tf.tasks.binary import Binary
from defect_tf.tasks.multiclass import MultiClass
from defect_tf.tasks.multilabel import MultiLabel

DEFAULT_TASK = "multilabel"
TASKS: dict[str, Task] = {task.name: task for task in (MultiLabel(), MultiClass(), Binary())}


def get_task(name: str) -> Task:
    """Look a task up by name; an unknown name lists the known ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; choose one of: {', '.join(TASKS)}") from None


def task_labels(source: LabelSource, task_name: str | None) -> tuple[Task, LabelSource, list[str]]:
    """The task a run trains (`task_name`, or without one: multi-class for a layout of one class per image,
    else multi-label), the labels as that task reads them, and what about them it cannot train on."""
    task = get_task(task_name or ("multiclass" if source.one_class_per_image else DEFAULT_TASK))
    if task.name == "binary" and source.one_class_per_image:
        source = binary_from_classes(source)
    table = source.table
    problems = task.label_problems(table) if table.attributes else []
    prepared = LabelTable(table.attributes, table.images, task.prepare(table.values), table.notes)
    return task, replace(source, table=prepared), problems
