"""The action classes, scenarios and subjects of the DualCam dataset (configuration, not code)."""

from .errors import BadInput

# The paper's list (Pérez et al., "Audio-visual model distillation using acoustic images", WACV
# 2020) repeats "typing" and its Fig. 2 shows hammering: this is the working list of its official
# code, in the order used for class indices everywhere (datasets, models, API).
CLASSES: tuple[str, ...] = (
    "clapping",
    "snapping_fingers",
    "speaking",
    "whistling",
    "playing_kendama",
    "clicking",
    "typing",
    "knocking",
    "hammering",
    "peanut_breaking",
    "paper_ripping",
    "plastic_crumpling",
    "paper_shaking",
    "stick_dropping",
)
SCENARIOS: dict[int, str] = {1: "anechoic room", 2: "indoor open space (strong echoes)", 3: "outdoor terrace (noisy)"}
N_SUBJECTS = 9


def class_index(label: str) -> int:
    """Index of a class name; raises BadInput for an unknown one."""
    try:
        return CLASSES.index(label)
    except ValueError:
        raise BadInput(f"unknown class {label!r}; known: {', '.join(CLASSES)}") from None
