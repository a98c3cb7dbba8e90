"""Why a propagation stopped, in words, with the setting that would let it go on.

"Forward: stopped at z = 12: the model's quality score fell to 0.52 (< 0.70); lower
'Min score' to go on."  One line per direction walked; slice positions are indices along
the walked axis, as napari's slider shows them.
"""
from __future__ import annotations

from ...engine.propagation.prompts import AREA_JUMP, EMPTY, LOW_SCORE

#: The panel's names of the settings a stop rule reads.
MIN_SCORE, MAX_AREA, PAST_EMPTY, RANGE = ("'Min score'", "'Max area change'",
                                          "'Walk past empty slices'", "'Range'")


def stop_lines(result, rules, steps: float, axis: str) -> list[str]:
    """One sentence per direction of ``result`` (a PropagationResult) walked with ``rules``
    (StopRules) on an axis named ``axis`` whose slices are ``steps`` XY pixel sizes apart."""
    lines = []
    for direction, reason in result.stops.items():
        reports = [r for r in result.reports if r.direction == direction]
        lines.append(f"{direction.capitalize()}: "
                     + _why(reason, reports, result, direction, rules, steps, axis))
    return lines


def _why(reason, reports, result, direction, rules, steps, axis) -> str:
    if reason in (LOW_SCORE, AREA_JUMP, EMPTY):
        stop = next(r for r in reversed(reports) if r.status == reason)
        return f"stopped at {axis} = {stop.index}: {_rule_text(reason, stop, rules, steps)}."
    kept = [r for r in reports if r.kept]
    last = kept[-1].index if kept else result.seed
    if reason == "range":
        return f"reached the end of the range ({axis} = {last}); widen {RANGE} to go on."
    which = "last" if direction == "forward" else "first"
    return f"reached the {which} slice ({axis} = {last})."


def _rule_text(reason: str, stop, rules, steps: float) -> str:
    if reason == LOW_SCORE:
        return (f"the model's quality score fell to {stop.score:.2f} (< {rules.min_score:.2f}); "
                f"lower {MIN_SCORE} to go on")
    if reason == AREA_JUMP:
        ratio = stop.area_ratio
        change, how = (ratio, "grew") if ratio >= 1 else (1 / ratio, "shrank")
        allowed = rules.max_area_ratio ** steps
        return (f"the object's area {how} {change:.1f}× in one slice (more than the "
                f"{allowed:.1f}× allowed); raise {MAX_AREA} to go on")
    return f"the object vanished (an empty mask); tick {PAST_EMPTY} to walk past it"
