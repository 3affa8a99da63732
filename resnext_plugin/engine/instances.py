"""mmengine's named global instances, dropped again after a block: as if it ran in its own process.

mmengine keeps loggers, message hubs, visualizers and default scopes (its ``ManagerMixin``
classes) in process-wide tables by name; a runner leaves its own behind, and the next runner in
the process finds them (mmdet's configs name their visualizer ``'visualizer'``, so a second
runner would write into the first one's work dir; a ``DefaultScope`` left current changes which
defaults the next directly built model gets). The demo pipeline runs every tool in one process
and the tests run many runners in one; both drop what a step created with
:func:`forget_new_global_instances`.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator


def manager_classes() -> list[type]:
    """mmengine's ``ManagerMixin`` and every subclass of it imported so far."""
    from mmengine.utils import ManagerMixin

    classes, stack = [], [ManagerMixin]
    while stack:
        cls = stack.pop()
        classes.append(cls)
        stack.extend(cls.__subclasses__())
    return classes


@contextlib.contextmanager
def forget_new_global_instances(*kinds: type) -> Iterator[None]:
    """Drop the global instances of ``kinds`` (default: every ``ManagerMixin`` class) created
    inside the block; a dropped logger's file handlers are closed."""
    def classes() -> list[type]:
        return list(kinds) or manager_classes()

    before = {cls: set(cls._instance_dict) for cls in classes()}
    try:
        yield
    finally:
        for cls in classes():
            for name in set(cls._instance_dict) - before.get(cls, set()):
                instance = cls._instance_dict.pop(name)
                for handler in list(getattr(instance, "handlers", ())):  # MMLogger's files
                    handler.close()
                    instance.removeHandler(handler)
