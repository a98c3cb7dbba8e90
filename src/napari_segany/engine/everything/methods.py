"""The three methods of everything mode and what each needs: the one method -> model map.

========================  ===========================  ==============================
method                    model (``ModelSpec.task``)   also
========================  ===========================  ==============================
``grid``                  promptable (SAM family)
``object_aware``          promptable (SAM family)      the MobileSAMv2 box detector
``fastsam``               instance (FastSAM)
========================  ===========================  ==============================

The widget's model list (:func:`models_for`), the command line's checks
(:func:`check_model_name`, :func:`check_params`) and the engine's refusal of a loaded
network of the wrong kind (:func:`check_network`, :func:`check_detector`) all read this
module, so a method or a model family is added here once.
"""
from __future__ import annotations

from dataclasses import fields

from ...models.registry import INSTANCE, PROMPTABLE, REGISTRY, get_spec
from ..errors import CheckpointError

METHODS = ("grid", "object_aware", "fastsam")
#: The registry task of the model each method runs.
METHOD_TASK = {"grid": PROMPTABLE, "object_aware": PROMPTABLE, "fastsam": INSTANCE}
#: The registry model the GUI and the command line propose first for each method.
DEFAULT_MODEL = {"grid": "mobile_sam", "object_aware": "mobile_sam", "fastsam": "fastsam_s"}
#: The registry model of the object-aware method's box detector.
DETECTOR_NAME = "mobilesamv2_objectaware"


def check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}: choose one of {', '.join(METHODS)}.")


def models_for(method: str) -> list[str]:
    """The registry models that can run ``method``, in registry order."""
    check_method(method)
    return [name for name, spec in REGISTRY.items() if spec.task == METHOD_TASK[method]]


def check_model_name(method: str, name) -> None:
    """Raise ValueError when the registry model ``name`` (or a ModelSpec) cannot run
    ``method``."""
    spec = get_spec(name)
    if spec.task != METHOD_TASK[method]:
        raise ValueError(f"--method {method} needs one of {', '.join(models_for(method))}; "
                         f"{spec.name} is a {spec.task} model.")


def params_class(method: str):
    """The dataclass of ``method``'s parameters (GridParams, ObjectAwareParams, FastSAMParams)."""
    check_method(method)
    if method == "grid":
        from .grid import GridParams

        return GridParams
    if method == "object_aware":
        from .object_aware import ObjectAwareParams

        return ObjectAwareParams
    from .fastsam_method import FastSAMParams

    return FastSAMParams


def checked_params(cls, method: str, kwargs: dict):
    """``cls(**kwargs)`` for a method's parameter dataclass, refusing names it does not have."""
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(kwargs) - names)
    if unknown:
        raise ValueError(f"Unknown {method} parameters {unknown}; known: {sorted(names)}.")
    return cls(**kwargs)


def with_model_defaults(method: str, spec, params: dict) -> dict:
    """``params`` over the model family's defaults for ``method`` (``ModelSpec.
    everything_defaults``: where its official generator differs from SAM's, e.g. SAM 2's
    ``pred_iou_thresh`` 0.8 instead of 0.88); the user's values win."""
    family = dict(getattr(spec, "everything_defaults", {}).get(method, {}))
    return {**family, **params}


def check_params(method: str, params: dict) -> None:
    """Raise ValueError for parameters ``method`` does not have (before any model loads)."""
    params_class(method).from_kwargs(**params)


def check_network(method: str, model) -> None:
    """Raise CheckpointError unless the loaded ``model`` is of the kind ``method`` runs."""
    check_method(method)
    if METHOD_TASK[method] == INSTANCE:
        check_fastsam_network(model)
    else:
        check_promptable(model, method)


def check_promptable(model, method: str) -> None:
    """Raise CheckpointError unless ``model`` has the promptable contract (encode + decode)."""
    if callable(getattr(model, "encode", None)) and callable(getattr(model, "decode", None)):
        return
    raise CheckpointError(
        f"method={method!r} needs a promptable model ({_names(PROMPTABLE)}); "
        f"{describe_network(model)} is not one. FastSAM networks go with method='fastsam'.")


def check_fastsam_network(model) -> None:
    """Raise CheckpointError unless ``model`` is a FastSAM network (a YOLOv8-seg with mask
    prototypes), naming what it is instead."""
    head = getattr(model, "head", None)
    if getattr(head, "has_proto", False):
        return
    what = describe_network(model)
    needs = ("method='fastsam' needs a FastSAM network (FastSAM-s.pt or FastSAM-x.pt, "
             "load_model('fastsam_s'))")
    if head is not None:  # a YOLOv8 without prototypes: MobileSAMv2's detector
        raise CheckpointError(
            f"{needs}; {what} is a box detector without mask prototypes (MobileSAMv2's "
            "ObjectAwareModel.pt?), which is the object-aware method's detector.")
    raise CheckpointError(
        f"{needs}; {what} is not one. Promptable models ({_names(PROMPTABLE)}) go with "
        "method='grid' or 'object_aware'.")


def check_detector(detector) -> None:
    """Raise CheckpointError unless ``detector`` is a box detector (MobileSAMv2's
    object-aware YOLOv8).  A FastSAM network would run, but its boxes are not what the
    method was designed with: refuse it rather than silently give other results."""
    head = getattr(detector, "head", None)
    if head is None:
        raise CheckpointError(
            f"{describe_network(detector)} is not an object detector: the object-aware method "
            "needs MobileSAMv2's ObjectAwareModel.pt as its detector.")
    if getattr(head, "has_proto", False):
        raise CheckpointError(
            f"{describe_network(detector)} is a FastSAM network (it has mask prototypes), not "
            "MobileSAMv2's detector ObjectAwareModel.pt: run it with the FastSAM method, or "
            "give ObjectAwareModel.pt as the detector.")


def describe_network(model) -> str:
    """'<model name> from <file>' for messages (what load_model recorded), else the class name."""
    name = getattr(getattr(model, "spec", None), "name", type(model).__name__)
    source = getattr(model, "checkpoint_path", None)
    return f"{name} (from {source})" if source else name


def _names(task: str) -> str:
    """E.g. 'sam_vit_b, mobile_sam, efficient_sam_vitt...': one registry model per family."""
    first: dict[str, str] = {}
    for spec in REGISTRY.values():
        if spec.task == task:
            first.setdefault(spec.family, spec.name)
    return ", ".join(first.values()) + "..."
