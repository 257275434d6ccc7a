"""The papers' published figures that ``python bench/tables.py papers`` sets beside Arena's.

Percentages, as printed in the two papers in the project's reading list (the seeds of
DESIGN.md): Veldanda & Garg, "On Evaluating Neural Network Backdoor Defenses", Table 3; Le Roux
et al., "A Double-Edged Sword: The Power of Two in Defending Against DNN Backdoor Attacks",
Tables IV, V and VIII. A list is one figure per trigger (lipstick, eyebrow, sunglasses). A
string marks a cell the paper did not measure (``"Fails"``, ``"out of scope"``, ``"-"``).
"""

from __future__ import annotations

Figure = float | list[float] | str

# Veldanda & Garg, Table 3: the baseline BadNet's CA and ASR, then each defense's CA and ASR
# after it ran (STRIP: FAR at FRR = 3%). "oracle": the paper gave the defense the target label.
VG_ATTACKS = ("aaa", "cla", "tca", "pn", "fsa", "sg", "ls", "mtsta", "mtmta")
VG_DATASETS = {
    "aaa": "MNIST",
    "cla": "CIFAR-10",
    "tca": "CIFAR-10",
    "pn": "GTSRB",
    "fsa": "GTSRB",
    "sg": "YouTube Face",
    "ls": "YouTube Face",
    "mtsta": "YouTube Face",
    "mtmta": "YouTube Face",
}
VG_TABLE3: dict[str, dict[str, tuple[Figure, Figure]]] = {
    "aaa": {
        "baseline": (97.76, 95.91),
        "fine-pruning": (97.6, 57.35),
        "neural-cleanse": ("Fails", "Fails"),
        "strip": ("-", 99.22),
        "mesa": ("Fails", "Fails"),
    },
    "cla": {
        "baseline": (89.02, 100.0),
        "fine-pruning": (99.13, 14.68),
        "neural-cleanse oracle": (97.74, 4.77),
        "strip": ("-", 43.45),
        "mesa": ("-", "-"),
    },
    "tca": {
        "baseline": (87.71, 99.9),
        "fine-pruning": (88.26, 99.62),
        "neural-cleanse oracle": (88.59, 99.82),
        "strip": ("-", 22.22),
        "mesa": ("out of scope", "out of scope"),
    },
    "pn": {
        "baseline": (95.46, 99.82),
        "fine-pruning": (94.58, 99.69),
        "neural-cleanse": (95.24, 12.39),
        "strip": ("-", 100.0),
        "mesa": ("out of scope", "out of scope"),
    },
    "fsa": {
        "baseline": (95.08, 90.06),
        "fine-pruning": (95.37, 45.5),
        "neural-cleanse": (95.8, 28.99),
        "strip": ("-", 99.95),
        "mesa oracle": (93.65, 5.58),
    },
    "sg": {
        "baseline": (97.89, 99.98),
        "fine-pruning": (97.18, 95.97),
        "neural-cleanse oracle": (95.74, 38.09),
        "strip": ("-", 10.34),
        "mesa oracle": (77.64, 1.88),
    },
    "ls": {
        "baseline": (97.19, 91.51),
        "fine-pruning": (97.86, 90.53),
        "neural-cleanse oracle": (97.14, 28.44),
        "strip": ("-", 18.42),
        "mesa": ("out of scope", "out of scope"),
    },
    "mtsta": {
        "baseline": (95.84, [92.22, 92.24, 100.0]),
        "fine-pruning": (97.31, [45.04, 64.71, 94.94]),
        "neural-cleanse oracle": (93.37, [0.0, 0.0, 8.67]),
        "strip": ("-", [11.79, 63.73, 5.84]),
        "mesa": ("out of scope", "out of scope"),
    },
    "mtmta": {
        "baseline": (95.93, [91.51, 91.39, 100.0]),
        "fine-pruning": (96.91, [52.36, 82.34, 0.0]),
        "neural-cleanse oracle": (94.18, [30.79, 0.0, 95.68]),
        "strip": ("-", [15.90, 53.64, 15.58]),
        "mesa": ("out of scope", "out of scope"),
    },
}
VG_SUCCESS = 20.0
"""Veldanda & Garg's criterion: a defense succeeds when the ASR (STRIP: the FAR) after it is
below 20% (for a multi-trigger attack, every trigger's)."""

# Le Roux et al., Table V (input purifiers), CIFAR-10 column, SDA and SASR; the glasses patch is
# not run on CIFAR-10, so its row takes the CASIA column. Table IV gives each BadNet's CDA.
LR_ATTACKS = (
    "badnets",
    "badnets-dynamic",
    "glasses",
    "blend-cartoon",
    "blend-noise",
    "iadba",
    "issba",
    "refool",
    "sig",
    "wanet",
)
LR_CDA = {  # Table IV, CIFAR-10 (CASIA for the glasses patch)
    "badnets": 93.4,
    "badnets-dynamic": 93.7,
    "glasses": 91.9,
    "blend-cartoon": 93.8,
    "blend-noise": 93.4,
    "iadba": 88.5,
    "issba": 89.9,
    "refool": 92.6,
    "sig": 93.6,
    "wanet": 94.0,
}
LR_TABLE5: dict[str, dict[str, tuple[float, float]]] = {
    "shrinkpad": {
        "badnets": (91.7, 5.3),
        "badnets-dynamic": (92.1, 33.6),
        "glasses": (67.2, 73.1),
        "blend-cartoon": (92.1, 13.2),
        "blend-noise": (90.8, 10.0),
        "iadba": (86.6, 1.1),
        "issba": (89.3, 85.2),
        "refool": (88.9, 65.5),
        "sig": (91.0, 94.0),
        "wanet": (33.0, 99.2),
    },
    "deepsweep": {
        "badnets": (93.4, 1.2),
        "badnets-dynamic": (92.5, 85.7),
        "glasses": (86.6, 77.6),
        "blend-cartoon": (92.5, 28.2),
        "blend-noise": (91.9, 72.6),
        "iadba": (88.8, 1.3),
        "issba": (93.3, 27.9),
        "refool": (92.3, 26.2),
        "sig": (93.0, 93.3),
        "wanet": (91.5, 11.3),
    },
    "februus": {
        "badnets": (90.3, 1.1),
        "badnets-dynamic": (91.6, 1.8),
        "glasses": (90.6, 100.0),
        "blend-cartoon": (90.9, 97.1),
        "blend-noise": (91.3, 99.5),
        "iadba": (85.9, 2.4),
        "issba": (90.0, 93.7),
        "refool": (89.7, 55.8),
        "sig": (90.8, 100.0),
        "wanet": (91.2, 18.2),
    },
    "bdmae": {
        "badnets": (94.0, 1.2),
        "badnets-dynamic": (93.1, 0.7),
        "glasses": (90.3, 100.0),
        "blend-cartoon": (92.7, 97.5),
        "blend-noise": (92.5, 97.1),
        "iadba": (88.9, 0.5),
        "issba": (90.2, 99.1),
        "refool": (92.4, 59.4),
        "sig": (93.4, 99.8),
        "wanet": (93.6, 17.9),
    },
}
LR_GLASSES_FROM_CASIA = "glasses"
# Le Roux et al., Table VIII: STRIP then BDMAE on CASIA, SDA and SASR; BDMAE alone on CASIA
# from Table V, for the comparison the table makes; CASIA's CDA from Table IV.
LR_TABLE8: dict[str, tuple[float, float]] = {
    "badnets": (91.6, 0.0),
    "badnets-dynamic": (92.1, 0.0),
    "glasses": (92.0, 59.4),
    "blend-cartoon": (91.0, 2.3),
    "blend-noise": (91.8, 7.4),
    "iadba": (84.1, 0.5),
    "issba": (90.7, 50.6),
    "refool": (91.1, 92.1),
    "sig": (92.3, 1.6),
    "wanet": (80.8, 13.1),
}
LR_BDMAE_CASIA: dict[str, tuple[float, float]] = {
    "badnets": (90.6, 0.0),
    "badnets-dynamic": (90.2, 0.3),
    "glasses": (90.3, 100.0),
    "blend-cartoon": (90.5, 100.0),
    "blend-noise": (90.4, 95.2),
    "iadba": (83.7, 33.9),
    "issba": (90.1, 85.5),
    "refool": (89.5, 90.1),
    "sig": (91.2, 100.0),
    "wanet": (91.8, 59.0),
}
LR_CDA_CASIA = {
    "badnets": 92.0,
    "badnets-dynamic": 92.2,
    "glasses": 91.9,
    "blend-cartoon": 91.7,
    "blend-noise": 92.5,
    "iadba": 86.7,
    "issba": 90.9,
    "refool": 91.4,
    "sig": 92.3,
    "wanet": 92.4,
}
LR_SDA_POINTS = 10.0
LR_SASR = 30.0
"""Le Roux et al.'s criterion (the green cells): SDA within 10 points of the BadNet's CDA and
SASR below 30%."""
