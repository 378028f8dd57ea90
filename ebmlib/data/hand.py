"""Shadow-hand trajectories for the dynamics chapter (Du & Mordatch 2019, section 5).

**What the data is.** Trajectories of the simulated Shadow Dexterous Hand holding a free block (cube of side
5 cm), simulated with MuJoCo from the ``manipulate_block.xml`` model that ships in the ``gymnasium-robotics``
wheel (the model behind ``HandManipulateBlock``). The environment class itself is not used: the model is
loaded with ``mujoco.MjModel`` and stepped exactly as the environment steps it (20 physics sub-steps of 2 ms per
action, so one transition is 0.04 s; an action ``a`` in ``[-1, 1]^20`` becomes the position-actuator control
``ctrl = centre + a * half_range`` of each actuator's control range, clipped: the environment's absolute
control). No GL context is needed to generate data.

A trajectory of ``length`` ``L`` (default 100) has ``L + 1`` states ``s_0 .. s_L`` and the ``L`` actions
``a_0 .. a_{L-1}``, ``s_{t+1}`` being the state after applying ``a_t`` from ``s_t``: ``L`` transitions for
``E(s_t, s_{t+1})`` and ``E(s_t, a_t, s_{t+1})`` (:func:`transitions` flattens them).

**State layout** (31 numbers, ``float32``; :data:`STATE_NAMES` spells them out):

* ``0:24`` hand joint angles (rad), in the model's joint order: ``0`` WRJ1, ``1`` WRJ0 (wrist);
  ``2:6`` FFJ3..FFJ0 (first finger), ``6:10`` MFJ3..MFJ0 (middle), ``10:14`` RFJ3..RFJ0 (ring),
  ``14:19`` LFJ4..LFJ0 (little), ``19:24`` THJ4..THJ0 (thumb). These are MuJoCo's ``qpos[0:24]``, the same
  numbers as the first 24 of the environment's ``observation``.
* ``24:27`` cube centre position (m, world frame; the palm is at about ``(1, 0.96, 0.14)`` and the cube rests at
  about ``(1.01, 0.88, 0.16)``).
* ``27:31`` cube orientation as a unit quaternion ``(w, x, y, z)``, MuJoCo's convention, exactly as the
  simulator integrates it (no sign canonicalisation, so it is continuous in time; ``q`` and ``-q`` are the same
  rotation). ``24:31`` is MuJoCo's free-joint ``qpos`` of ``object:joint``, i.e. the environment's
  ``achieved_goal``.

Velocities are not part of the state (as in the paper, which predicts joint positions and the cube pose), so the
data is not exactly Markov in the state: the models see position-only snapshots 0.04 s apart.

**Actions** (20 numbers, ``float32``, in ``[-1, 1]``): the normalised targets of the 20 position actuators in
:data:`ACTION_NAMES` order (WRJ1, WRJ0, FFJ3..FFJ1, MFJ3..MFJ1, RFJ3..RFJ1, LFJ4..LFJ1, THJ4..THJ0; the
distal joints J0 of the four fingers are coupled to J1 by tendons and have no actuator). Stored actions are the
ones applied, random ones included.

**The scripted policy** (the paper's trained policy, from OpenAI's in-hand reorientation work, is not public).
Action 0 is the middle of every control range: the environment's reset pose, a palm-up hand with half-flexed
fingers cupping the cube. Per trajectory the policy draws a base offset ``b ~ N(0, 0.15^2)`` per actuator, a
frequency ``f ~ U(0.4, 1.5)`` Hz, a phase lag between neighbouring fingers ``w ~ U(-1.2, 1.2)`` rad (a wave
running across the fingers, either direction), a global phase and per-actuator phase jitter ``N(0, 0.3^2)``, and
amplitudes ``0.8 * U(0.5, 1)`` for finger and thumb actuators and ``0.3 * U(0.5, 1)`` for the wrist; then
``a_t = clip(b + A sin(2 pi f t dt + phase), -1, 1)``. As in the paper, every 4th action (``t = 3, 7, 11, ...``)
is replaced by a uniform random action in ``[-1, 1]^20``. This open-loop finger wave rolls and tilts the cube in
the cupped hand and rarely drops it (seed 0, 500 trajectories of length 100, MuJoCo 3.11: the cube stayed in
hand throughout in 99.8% of them; its largest rotation away from the initial orientation had median 41 and
90th percentile 62 degrees; median cube displacement 3.7 mm per step). It differs from
the paper's policy in that it does not look at the state and pursues no goal: the trained policy reorients the
cube on purpose to commanded orientations, so its trajectories contain larger, more systematic rotations and
finger gaits that this data lacks; and the paper's simulator (OpenAI's) and its randomisations are not the same
as the gymnasium-robotics model used here.

**What is randomised**, per trajectory, from the trajectory's own generator (see *Determinism*): the cube's
initial orientation (uniform over rotations) and position (``N(0, 0.005^2)`` m per axis around the model's
default, as the environment's reset does), then 10 settling steps with action 0 (redrawn if the cube left the
hand), and the dynamics, recorded in ``params`` (:data:`PARAM_NAMES` order):

* ``friction_scale ~ U(0.7, 1.3)``: sliding friction of every geom (hand and cube);
* ``cube_mass_scale ~ U(0.5, 1.5)``: the cube's mass and inertia (a denser or lighter cube of the same size);
* ``damping_scale ~ U(0.7, 1.3)``: the damping of the 24 hand joints;
* ``actuator_gain_scale ~ U(0.75, 1.25)``: the stiffness ``kp`` of the 20 position actuators.

**In hand.** ``in_hand_steps[i, t]`` is true when the cube centre is higher than :data:`IN_HAND_HEIGHT` (0.10 m:
below the palm, which is at 0.14 m; a dropped cube lies on the floor at 0.025 m), and ``in_hand[i]`` when that
holds at every state of trajectory ``i``.

**Determinism.** Trajectory ``i`` of a run with seed ``seed`` uses ``np.random.default_rng([seed, i])`` and
nothing else, and each trajectory starts from a freshly reset simulator with its parameters set from the
model's nominal values, so the arrays depend on ``(seed, i)`` only, not on the worker count or on which
process simulated which trajectory. They can differ across MuJoCo versions and machines (floating point).

Paper scale is 200,000 trajectories of length 100 with a 90/10 train/test split (:func:`split`).
Command line: ``main(["--n", "2000", "--workers", "2"])`` writes
``data_root()/hand/hand_n2000_len100_seed0.npz``.
"""
from __future__ import annotations

import importlib
import importlib.util
import multiprocessing
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np

from ebmlib.core.checkpoint import atomic_write
from ebmlib.data.root import data_root

__all__ = [
    "ACTION_DIM", "ACTION_NAMES", "CONTROL_DT", "CUBE_POS", "CUBE_QUAT", "HAND_JOINTS", "IN_HAND_HEIGHT",
    "PARAM_NAMES", "PARAM_RANGES", "PER_TRAJECTORY_KEYS", "STATE_DIM", "STATE_NAMES",
    "default_path", "generate_trajectories", "hand_xml_path", "in_hand_fraction", "load_trajectories", "generate_to_file",
    "render_states", "save_trajectories", "split", "transitions",
]

# ---------------------------------------------------------------------------------------------------- layout
HAND_JOINTS: Tuple[str, ...] = (
    "WRJ1", "WRJ0",
    "FFJ3", "FFJ2", "FFJ1", "FFJ0",
    "MFJ3", "MFJ2", "MFJ1", "MFJ0",
    "RFJ3", "RFJ2", "RFJ1", "RFJ0",
    "LFJ4", "LFJ3", "LFJ2", "LFJ1", "LFJ0",
    "THJ4", "THJ3", "THJ2", "THJ1", "THJ0",
)
STATE_NAMES: Tuple[str, ...] = HAND_JOINTS + ("cube_x", "cube_y", "cube_z", "cube_qw", "cube_qx", "cube_qy", "cube_qz")
ACTION_NAMES: Tuple[str, ...] = (
    "WRJ1", "WRJ0",
    "FFJ3", "FFJ2", "FFJ1",
    "MFJ3", "MFJ2", "MFJ1",
    "RFJ3", "RFJ2", "RFJ1",
    "LFJ4", "LFJ3", "LFJ2", "LFJ1",
    "THJ4", "THJ3", "THJ2", "THJ1", "THJ0",
)
STATE_DIM = len(STATE_NAMES)  # 31
ACTION_DIM = len(ACTION_NAMES)  # 20
N_HAND = len(HAND_JOINTS)  # 24
CUBE_POS = slice(24, 27)
CUBE_QUAT = slice(27, 31)

PARAM_NAMES: Tuple[str, ...] = ("friction_scale", "cube_mass_scale", "damping_scale", "actuator_gain_scale")
PARAM_RANGES: Dict[str, Tuple[float, float]] = {
    "friction_scale": (0.7, 1.3),
    "cube_mass_scale": (0.5, 1.5),
    "damping_scale": (0.7, 1.3),
    "actuator_gain_scale": (0.75, 1.25),
}

N_SUBSTEPS = 20  # as HandManipulateBlock: 20 x 2 ms per action
CONTROL_DT = 0.04
IN_HAND_HEIGHT = 0.10
SETTLE_STEPS = 10
RANDOM_EVERY = 4
DEFAULT_LENGTH = 100
_MAX_ATTEMPTS = 20

# policy constants (see the module docstring)
_BASE_STD = 0.15
_FREQ_RANGE = (0.4, 1.5)
_WAVE_RANGE = (-1.2, 1.2)
_PHASE_JITTER = 0.3
_FINGER_AMP = 0.8
_WRIST_AMP = 0.3
# which finger each actuator moves: -1 wrist, 0 first, 1 middle, 2 ring, 3 little, 4 thumb
_ACTUATOR_FINGER = np.array([-1, -1, 0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 4])

PER_TRAJECTORY_KEYS: Tuple[str, ...] = ("states", "actions", "in_hand", "in_hand_steps", "params", "index")
_INSTALL_HINT = 'pip install "mujoco>=3.5,<3.12" gymnasium-robotics'


# ---------------------------------------------------------------------------------------------------- model
def _import_mujoco():
    try:
        import mujoco
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(f"the hand data needs MuJoCo: {_INSTALL_HINT}") from err
    except Exception as err:  # pragma: no cover - e.g. MUJOCO_GL=osmesa without libOSMesa breaks `import mujoco`
        raise ImportError(f"importing mujoco failed with MUJOCO_GL={os.environ.get('MUJOCO_GL')!r} "
                          f"({type(err).__name__}: {err}); unset MUJOCO_GL or use egl") from err
    return mujoco


def hand_xml_path() -> Path:
    """Path of ``manipulate_block.xml`` in the installed ``gymnasium-robotics`` (found without importing it)."""
    spec = importlib.util.find_spec("gymnasium_robotics")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"the hand model ships with gymnasium-robotics: {_INSTALL_HINT}")
    for location in spec.submodule_search_locations:
        path = Path(location) / "envs" / "assets" / "hand" / "manipulate_block.xml"
        if path.is_file():
            return path
    raise FileNotFoundError(f"manipulate_block.xml not found in the gymnasium-robotics package at "
                            f"{list(spec.submodule_search_locations)}")


def _load_model():
    mujoco = _import_mujoco()
    model = mujoco.MjModel.from_xml_path(str(hand_xml_path()))
    names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j) for j in range(N_HAND)]
    expected = [f"robot0:{n}" for n in HAND_JOINTS]
    if names != expected or model.nu != ACTION_DIM:
        raise RuntimeError(f"unexpected hand model layout: joints {names}, {model.nu} actuators")
    return model


class _Simulator:
    """One MuJoCo model and data, reset and re-parameterised for every trajectory."""

    def __init__(self):
        mujoco = self.mujoco = _import_mujoco()
        self.model = m = _load_model()
        self.data = mujoco.MjData(m)
        obj = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, "object:joint")
        self.obj_qpos = int(m.jnt_qposadr[obj])
        self.cube_body = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "object")
        self.hand_dofs = np.array([m.jnt_dofadr[j] for j in range(N_HAND)])
        self.ctrl_lo, self.ctrl_hi = m.actuator_ctrlrange[:, 0].copy(), m.actuator_ctrlrange[:, 1].copy()
        self.ctrl_mid = (self.ctrl_lo + self.ctrl_hi) / 2
        self.ctrl_half = (self.ctrl_hi - self.ctrl_lo) / 2
        self.nominal = {
            "geom_friction": m.geom_friction.copy(),
            "body_mass": m.body_mass.copy(),
            "body_inertia": m.body_inertia.copy(),
            "dof_damping": m.dof_damping.copy(),
            "actuator_gainprm": m.actuator_gainprm.copy(),
            "actuator_biasprm": m.actuator_biasprm.copy(),
        }

    def set_params(self, params: np.ndarray) -> None:
        """Set the dynamics from ``params`` (PARAM_NAMES order) relative to the nominal model."""
        m, nom = self.model, self.nominal
        friction, mass, damping, gain = (float(p) for p in params)
        m.geom_friction[:] = nom["geom_friction"]
        m.geom_friction[:, 0] *= friction
        m.body_mass[:] = nom["body_mass"]
        m.body_inertia[:] = nom["body_inertia"]
        m.body_mass[self.cube_body] *= mass
        m.body_inertia[self.cube_body] *= mass
        m.dof_damping[:] = nom["dof_damping"]
        m.dof_damping[self.hand_dofs] *= damping
        m.actuator_gainprm[:] = nom["actuator_gainprm"]
        m.actuator_biasprm[:] = nom["actuator_biasprm"]
        m.actuator_gainprm[:, 0] *= gain  # position actuator: force = kp * ctrl - kp * qpos
        m.actuator_biasprm[:, 1] *= gain
        self.mujoco.mj_setConst(m, self.data)  # derived quantities (subtree masses, ...) from the new values

    def reset(self, cube_pos_offset: np.ndarray, cube_quat: np.ndarray) -> None:
        d, q = self.data, self.obj_qpos
        self.mujoco.mj_resetData(self.model, d)
        d.qpos[q:q + 3] += cube_pos_offset
        d.qpos[q + 3:q + 7] = cube_quat
        for _ in range(SETTLE_STEPS):
            self.step(np.zeros(ACTION_DIM))

    def step(self, action: np.ndarray) -> None:
        self.data.ctrl[:] = np.clip(self.ctrl_mid + action * self.ctrl_half, self.ctrl_lo, self.ctrl_hi)
        self.mujoco.mj_step(self.model, self.data, nstep=N_SUBSTEPS)

    def state(self) -> np.ndarray:
        q = self.obj_qpos
        return np.concatenate([self.data.qpos[:N_HAND], self.data.qpos[q:q + 7]])

    def unstable(self) -> bool:
        return int(self.data.warning[self.mujoco.mjtWarning.mjWARN_BADQACC].number) > 0


_SIMULATOR: Optional[_Simulator] = None


def _simulator() -> _Simulator:
    global _SIMULATOR
    if _SIMULATOR is None:
        _SIMULATOR = _Simulator()
    return _SIMULATOR


# ---------------------------------------------------------------------------------------------------- policy
def _random_quaternion(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    return q if q[0] >= 0 else -q


def _draw_params(rng: np.random.Generator) -> np.ndarray:
    return np.array([rng.uniform(*PARAM_RANGES[name]) for name in PARAM_NAMES])


def _draw_policy(rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """Base offset, amplitudes, frequency (Hz) and phases of one trajectory's finger wave."""
    base = rng.normal(0.0, _BASE_STD, ACTION_DIM)
    freq = rng.uniform(*_FREQ_RANGE)
    wave = rng.uniform(*_WAVE_RANGE)
    phase = (np.where(_ACTUATOR_FINGER >= 0, _ACTUATOR_FINGER * wave, 0.0) + rng.uniform(0.0, 2 * np.pi)
             + rng.normal(0.0, _PHASE_JITTER, ACTION_DIM))
    amp = np.where(_ACTUATOR_FINGER >= 0, _FINGER_AMP, _WRIST_AMP) * rng.uniform(0.5, 1.0, ACTION_DIM)
    return base, amp, freq, phase


def _rollout(sim: _Simulator, seed: int, index: int, length: int):
    """Trajectory ``index`` of seed ``seed``: a function of ``(seed, index, length)`` only."""
    rng = np.random.default_rng([seed, index])
    params = _draw_params(rng)
    sim.set_params(params)
    for _ in range(_MAX_ATTEMPTS):
        sim.reset(rng.normal(0.0, 0.005, 3), _random_quaternion(rng))
        if sim.state()[CUBE_POS][2] <= IN_HAND_HEIGHT or sim.unstable():
            continue  # the cube fell off while settling (the environment's reset retries too)
        base, amp, freq, phase = _draw_policy(rng)
        states = np.empty((length + 1, STATE_DIM))
        actions = np.empty((length, ACTION_DIM))
        states[0] = sim.state()
        for t in range(length):
            if t % RANDOM_EVERY == RANDOM_EVERY - 1:
                action = rng.uniform(-1.0, 1.0, ACTION_DIM)
            else:
                action = np.clip(base + amp * np.sin(2 * np.pi * freq * t * CONTROL_DT + phase), -1.0, 1.0)
            sim.step(action)
            actions[t] = action
            states[t + 1] = sim.state()
        if np.isfinite(states).all() and not sim.unstable():
            return states, actions, params
    raise RuntimeError(f"trajectory {index} of seed {seed}: no stable roll-out in {_MAX_ATTEMPTS} attempts")


def _worker(task: Tuple[int, int, int]):
    seed, index, length = task
    return _rollout(_simulator(), seed, index, length)


# ---------------------------------------------------------------------------------------------------- generation
def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def generate_trajectories(n_traj: int, seed: int = 0, length: int = DEFAULT_LENGTH, workers: int = 1,
                          progress: bool = True) -> Dict[str, Any]:
    """Simulate ``n_traj`` trajectories of ``length`` transitions (see the module docstring).

    Returns a dict: ``states`` ``(n, length + 1, 31)`` float32, ``actions`` ``(n, length, 20)`` float32,
    ``in_hand`` ``(n,)`` bool, ``in_hand_steps`` ``(n, length + 1)`` bool, ``params`` ``(n, 4)`` float32,
    ``index`` ``(n,)`` int64 (the trajectory's index in the run, which with ``seed`` fixes it), the name tuples
    ``state_names`` / ``action_names`` / ``param_names`` as string arrays, and the scalars ``seed``, ``length``,
    ``control_dt``, ``in_hand_height`` and ``mujoco_version``. ``workers`` processes share the work; the result
    does not depend on their number.
    """
    n_traj = _check_int("n_traj", n_traj, 1)
    seed = _check_int("seed", seed, 0)
    length = _check_int("length", length, 1)
    workers = _check_int("workers", workers, 1)
    mujoco = _import_mujoco()
    hand_xml_path()  # fail early, in this process, if the model is missing
    from tqdm.auto import tqdm

    tasks = [(seed, i, length) for i in range(n_traj)]
    workers = min(workers, n_traj)
    bar = tqdm(total=n_traj, desc="hand trajectories", unit="traj", disable=not progress)
    results = []
    try:
        if workers == 1:
            for task in tasks:
                results.append(_worker(task))
                bar.update()
        else:
            # fork is cheap and needs no re-import (ebmlib imports torch); spawn where fork does not exist
            method = "fork" if sys.platform.startswith("linux") else "spawn"
            chunk = max(1, min(16, n_traj // (4 * workers)))
            with multiprocessing.get_context(method).Pool(workers) as pool:
                for result in pool.imap(_worker, tasks, chunksize=chunk):
                    results.append(result)
                    bar.update()
    finally:
        bar.close()

    states = np.stack([r[0] for r in results]).astype(np.float32)
    steps = states[:, :, CUBE_POS][:, :, 2] > IN_HAND_HEIGHT
    return {
        "states": states,
        "actions": np.stack([r[1] for r in results]).astype(np.float32),
        "in_hand": steps.all(axis=1),
        "in_hand_steps": steps,
        "params": np.stack([r[2] for r in results]).astype(np.float32),
        "index": np.arange(n_traj, dtype=np.int64),
        "state_names": np.array(STATE_NAMES),
        "action_names": np.array(ACTION_NAMES),
        "param_names": np.array(PARAM_NAMES),
        "seed": seed,
        "length": length,
        "control_dt": CONTROL_DT,
        "in_hand_height": IN_HAND_HEIGHT,
        "mujoco_version": str(mujoco.__version__),
    }


def in_hand_fraction(data: Dict[str, Any]) -> float:
    """Fraction of the trajectories in ``data`` whose cube stayed in the hand at every state."""
    return float(np.mean(data["in_hand"]))


# ---------------------------------------------------------------------------------------------------- storage
def _check_data(data: Dict[str, Any]) -> int:
    missing = [k for k in ("states", "actions") if k not in data]
    if missing:
        raise ValueError(f"hand data needs the keys {missing}; got {sorted(data)}")
    states, actions = np.asarray(data["states"]), np.asarray(data["actions"])
    if states.ndim != 3 or states.shape[2] != STATE_DIM:
        raise ValueError(f"states must have shape (n, length + 1, {STATE_DIM}), got {states.shape}")
    n, length = states.shape[0], states.shape[1] - 1
    if actions.shape != (n, length, ACTION_DIM):
        raise ValueError(f"actions must have shape (n, length, {ACTION_DIM}) = {(n, length, ACTION_DIM)} for "
                         f"states of shape {states.shape}, got {actions.shape}")
    for key in PER_TRAJECTORY_KEYS:
        if key in data and len(data[key]) != n:
            raise ValueError(f"{key} has {len(data[key])} rows, states has {n}")
    return n


def default_path(n_traj: int, seed: int = 0, length: int = DEFAULT_LENGTH,
                 root: Optional[str | os.PathLike] = None) -> Path:
    """``data_root(root)/hand/hand_n{n_traj}_len{length}_seed{seed}.npz``."""
    return data_root(root) / "hand" / f"hand_n{n_traj}_len{length}_seed{seed}.npz"


def save_trajectories(path: str | os.PathLike, data: Dict[str, Any]) -> Path:
    """Write ``data`` to one compressed ``.npz`` atomically (temporary file, then ``os.replace``)."""
    _check_data(data)
    path = Path(path).expanduser()
    if path.suffix != ".npz":
        raise ValueError(f"the hand data is saved as .npz, got {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {key: np.asarray(value) for key, value in data.items()}
    for key, value in arrays.items():
        if value.dtype == object:
            raise ValueError(f"{key}: object arrays cannot be saved without pickle")
    return atomic_write(path, lambda f: np.savez_compressed(f, **arrays))


def load_trajectories(path: str | os.PathLike) -> Dict[str, Any]:
    """Read a file written by :func:`save_trajectories` (0-d entries come back as Python scalars)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no hand data at {path}: generate it with `python -m ebmlib data hand`")
    with np.load(path, allow_pickle=False) as f:
        data = {key: (f[key].item() if f[key].ndim == 0 else f[key]) for key in f.files}
    _check_data(data)
    return data


def split(data: Dict[str, Any], test_fraction: float = 0.1, seed: int = 0) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Random train/test split of whole trajectories (default 90/10): ``(train, test)``.

    ``round(n * test_fraction)`` trajectories, at least one and at most ``n - 1``, go to the test set; both keep
    their original order, and ``index`` tells where each came from. Entries that are not per trajectory
    (names, scalars) are copied to both.
    """
    n = _check_data(data)
    if not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if n < 2:
        raise ValueError(f"a train/test split needs at least 2 trajectories, got {n}")
    seed = _check_int("seed", seed, 0)
    n_test = min(max(int(round(n * float(test_fraction))), 1), n - 1)
    order = np.random.default_rng(seed).permutation(n)
    test_idx, train_idx = np.sort(order[:n_test]), np.sort(order[n_test:])
    per_traj = [k for k in PER_TRAJECTORY_KEYS if k in data]
    train = {k: (np.asarray(v)[train_idx] if k in per_traj else v) for k, v in data.items()}
    test = {k: (np.asarray(v)[test_idx] if k in per_traj else v) for k, v in data.items()}
    return train, test


def transitions(data: Dict[str, Any]) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All transitions as flat arrays ``(s_t, a_t, s_{t+1})`` of shapes ``(n * length, 31 | 20 | 31)``."""
    _check_data(data)
    states, actions = np.asarray(data["states"]), np.asarray(data["actions"])
    return (states[:, :-1].reshape(-1, STATE_DIM), actions.reshape(-1, ACTION_DIM),
            states[:, 1:].reshape(-1, STATE_DIM))


# ---------------------------------------------------------------------------------------------------- rendering
_VIEWS = {
    # the environment's default camera, looking at the palm
    "side": dict(lookat=(1.0, 0.91, 0.16), distance=0.34, azimuth=55.0, elevation=-25.0),
    # the paper's figure 13 shows top-down views
    "top": dict(lookat=(0.985, 0.92, 0.16), distance=0.32, azimuth=180.0, elevation=-89.0),
}


def _gl_context(width: int, height: int):
    """An offscreen OpenGL context: the backend named by MUJOCO_GL (set to ``egl`` when unset), then OSMesa."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    wanted = os.environ["MUJOCO_GL"].lower().strip()
    backends = [b for b in dict.fromkeys([wanted, "egl", "osmesa"]) if b in ("egl", "osmesa", "glfw")]
    errors = []
    for backend in backends:
        try:
            context = importlib.import_module(f"mujoco.{backend}").GLContext(width, height)
            context.make_current()
            return context
        except Exception as err:  # noqa: BLE001 - report every backend's failure together
            errors.append(f"{backend}: {type(err).__name__}: {err}")
    raise RuntimeError("no offscreen OpenGL context for rendering (set MUJOCO_GL=egl or MUJOCO_GL=osmesa before "
                       "Python starts; generation itself needs no GL): " + "; ".join(errors))


def render_states(states: np.ndarray, width: int = 320, height: int = 240, view: str = "top") -> np.ndarray:
    """Render hand states offscreen: ``(31,)`` or ``(T, 31)`` states -> ``(T, height, width, 3)`` uint8 frames.

    Each frame shows the hand posed at the state's joint angles and the cube at its pose (the quaternion is
    normalised, so model predictions need not be unit length); nothing is simulated. ``view`` is ``"top"``
    (top-down, as in the paper's figure 13) or ``"side"`` (the environment's camera). Uses MUJOCO_GL's backend,
    ``egl`` when the variable is unset.
    """
    states = np.asarray(states, dtype=np.float64)
    if states.ndim == 1:
        states = states[None]
    if states.ndim != 2 or states.shape[1] != STATE_DIM:
        raise ValueError(f"states must have shape ({STATE_DIM},) or (T, {STATE_DIM}), got {states.shape}")
    if not np.isfinite(states).all():
        raise ValueError("states contain NaN or inf")
    width, height = _check_int("width", width, 1), _check_int("height", height, 1)
    if view not in _VIEWS:
        raise ValueError(f"view must be one of {sorted(_VIEWS)}, got {view!r}")
    mujoco = _import_mujoco()
    model = _load_model()
    model.vis.global_.offwidth = max(width, int(model.vis.global_.offwidth))
    model.vis.global_.offheight = max(height, int(model.vis.global_.offheight))
    target = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "target")
    model.geom_rgba[target, 3] = 0.0  # the goal cube of the RL task is not part of the state
    data = mujoco.MjData(model)
    obj = int(model.jnt_qposadr[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, "object:joint")])

    camera = mujoco.MjvCamera()
    camera.type = mujoco.mjtCamera.mjCAMERA_FREE
    cfg = _VIEWS[view]
    camera.lookat[:] = cfg["lookat"]
    camera.distance, camera.azimuth, camera.elevation = cfg["distance"], cfg["azimuth"], cfg["elevation"]
    option = mujoco.MjvOption()
    scene = mujoco.MjvScene(model, maxgeom=2000)
    viewport = mujoco.MjrRect(0, 0, width, height)

    gl = _gl_context(width, height)
    try:
        context = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_150)
        try:
            mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, context)
            frames = np.empty((len(states), height, width, 3), dtype=np.uint8)
            pixels = np.empty((height, width, 3), dtype=np.uint8)
            for i, state in enumerate(states):
                data.qpos[:N_HAND] = state[:N_HAND]
                data.qpos[obj:obj + 3] = state[CUBE_POS]
                quat = state[CUBE_QUAT]
                norm = np.linalg.norm(quat)
                data.qpos[obj + 3:obj + 7] = quat / norm if norm > 0 else (1.0, 0.0, 0.0, 0.0)
                mujoco.mj_kinematics(model, data)
                mujoco.mjv_updateScene(model, data, option, None, camera, mujoco.mjtCatBit.mjCAT_ALL, scene)
                mujoco.mjr_render(viewport, scene, context)
                mujoco.mjr_readPixels(pixels, None, viewport, context)
                frames[i] = pixels[::-1]  # OpenGL rows start at the bottom
        finally:
            context.free()
    finally:
        gl.free()
    return frames


# ---------------------------------------------------------------------------------------------------- command line
def generate_to_file(n: int, seed: int = 0, length: int = DEFAULT_LENGTH, workers: int = 1,
                     root: Optional[str | os.PathLike] = None, out: Optional[str | os.PathLike] = None,
                     progress: bool = True) -> Path:
    """Generate ``n`` trajectories and write them to one ``.npz`` (default ``<data root>/hand/...``; what
    ``python -m ebmlib data hand`` runs). Prints the rate and how often the cube stayed in the hand."""
    for name, value in (("n", n), ("length", length), ("workers", workers)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    path = Path(out) if out else default_path(n, seed, length, root)
    start = time.perf_counter()
    data = generate_trajectories(n, seed=seed, length=length, workers=workers, progress=progress)
    seconds = time.perf_counter() - start
    save_trajectories(path, data)
    print(f"{n} trajectories x {length} steps in {seconds:.1f} s ({n / seconds:.2f} traj/s with {workers} "
          f"worker(s)); cube in hand throughout: {in_hand_fraction(data):.1%}; wrote {path} "
          f"({path.stat().st_size / 1e6:.1f} MB)")
    return path
