"""Shadow-hand trajectory data (ebmlib.data.hand): a handful of short trajectories, skipped without MuJoCo."""
import subprocess
import sys

import numpy as np
import pytest

mujoco = pytest.importorskip("mujoco", reason="hand data needs mujoco (pip install 'mujoco>=3.5,<3.12' gymnasium-robotics)")
pytest.importorskip("gymnasium_robotics", reason="the Shadow-hand model ships with gymnasium-robotics")

from ebmlib.data import hand  # noqa: E402

N, LENGTH = 3, 10


@pytest.fixture(scope="module")
def data():
    return hand.generate_trajectories(N, seed=0, length=LENGTH, workers=1, progress=False)


def test_shapes_and_dtypes(data):
    assert data["states"].shape == (N, LENGTH + 1, 31) and data["states"].dtype == np.float32
    assert data["actions"].shape == (N, LENGTH, 20) and data["actions"].dtype == np.float32
    assert data["in_hand"].shape == (N,) and data["in_hand"].dtype == bool
    assert data["in_hand_steps"].shape == (N, LENGTH + 1) and data["in_hand_steps"].dtype == bool
    assert data["params"].shape == (N, len(hand.PARAM_NAMES)) and data["params"].dtype == np.float32
    np.testing.assert_array_equal(data["index"], np.arange(N))
    assert list(data["state_names"]) == list(hand.STATE_NAMES) and len(hand.STATE_NAMES) == 31
    assert list(data["action_names"]) == list(hand.ACTION_NAMES) and len(hand.ACTION_NAMES) == 20
    assert data["seed"] == 0 and data["length"] == LENGTH
    assert np.isfinite(data["states"]).all()
    assert np.abs(data["actions"]).max() <= 1.0
    # unit quaternions, params inside their ranges, in-hand flags follow the cube height
    np.testing.assert_allclose(np.linalg.norm(data["states"][..., hand.CUBE_QUAT], axis=-1), 1.0, atol=1e-5)
    for j, name in enumerate(hand.PARAM_NAMES):
        lo, hi = hand.PARAM_RANGES[name]
        assert (lo <= data["params"][:, j]).all() and (data["params"][:, j] <= hi).all()
    np.testing.assert_array_equal(data["in_hand_steps"], data["states"][..., 26] > hand.IN_HAND_HEIGHT)
    np.testing.assert_array_equal(data["in_hand"], data["in_hand_steps"].all(1))
    assert data["in_hand"].all()  # short trajectories: the cube has no time to leave


def test_every_fourth_action_is_random(data):
    """The periodic actions change smoothly; every 4th one (t = 3, 7, ...) jumps."""
    a = data["actions"].astype(np.float64)
    jumps = np.abs(np.diff(a, axis=1)).mean(axis=(0, 2))  # jump into step t+1
    into_random = jumps[[t - 1 for t in range(3, LENGTH, 4)]]
    smooth = [jumps[t - 1] for t in range(1, LENGTH) if t % 4 != 3 and (t - 1) % 4 != 3]
    assert into_random.min() > 3 * max(smooth)


def test_same_seed_same_arrays_and_workers_do_not_matter(data):
    again = hand.generate_trajectories(N, seed=0, length=LENGTH, workers=1, progress=False)
    parallel = hand.generate_trajectories(N, seed=0, length=LENGTH, workers=2, progress=False)
    for key in hand.PER_TRAJECTORY_KEYS:
        np.testing.assert_array_equal(again[key], data[key])
        np.testing.assert_array_equal(parallel[key], data[key])
    # a trajectory depends on (seed, index) only, not on how many come before it
    fewer = hand.generate_trajectories(2, seed=0, length=LENGTH, progress=False)
    np.testing.assert_array_equal(fewer["states"], data["states"][:2])


def test_different_seeds_differ(data):
    other = hand.generate_trajectories(N, seed=1, length=LENGTH, progress=False)
    assert not np.allclose(other["states"], data["states"])
    assert not np.allclose(other["params"], data["params"])
    # and trajectories within one run differ from each other
    assert not np.allclose(data["states"][0], data["states"][1])


def test_cube_part_is_the_simulator_cube_pose(data):
    """Re-run trajectory 1 in a fresh simulator and compare the stored states with MuJoCo's body poses."""
    sim = hand._Simulator()
    states, actions, params = hand._rollout(sim, 0, 1, LENGTH)
    np.testing.assert_array_equal(states.astype(np.float32), data["states"][1])
    np.testing.assert_array_equal(actions.astype(np.float32), data["actions"][1])
    np.testing.assert_array_equal(params.astype(np.float32), data["params"][1])
    mujoco.mj_kinematics(sim.model, sim.data)
    cube = mujoco.mj_name2id(sim.model, mujoco.mjtObj.mjOBJ_BODY, "object")
    np.testing.assert_allclose(data["states"][1, -1, hand.CUBE_POS], sim.data.xpos[cube], atol=1e-6)
    np.testing.assert_allclose(data["states"][1, -1, hand.CUBE_QUAT], sim.data.xquat[cube], atol=1e-6)
    # and the hand part is the named joints' angles
    for i, name in enumerate(hand.HAND_JOINTS):
        j = mujoco.mj_name2id(sim.model, mujoco.mjtObj.mjOBJ_JOINT, f"robot0:{name}")
        assert data["states"][1, -1, i] == np.float32(sim.data.qpos[sim.model.jnt_qposadr[j]])


def test_save_load_round_trip(data, tmp_path):
    path = hand.save_trajectories(tmp_path / "sub" / "hand.npz", data)
    assert path.is_file() and not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    loaded = hand.load_trajectories(path)
    assert set(loaded) == set(data)
    for key, value in data.items():
        if isinstance(value, np.ndarray):
            assert loaded[key].dtype == value.dtype
            np.testing.assert_array_equal(loaded[key], value)
        else:
            assert loaded[key] == value and type(loaded[key]) is type(value)


def test_split_sizes_and_disjointness(data):
    big = {**data, **{k: np.concatenate([data[k]] * 10) for k in hand.PER_TRAJECTORY_KEYS}}
    big["index"] = np.arange(len(big["states"]))
    train, test = hand.split(big, test_fraction=0.1, seed=0)
    assert len(train["states"]) == 27 and len(test["states"]) == 3
    assert set(train["index"]).isdisjoint(test["index"])
    assert sorted(np.concatenate([train["index"], test["index"]])) == list(range(30))
    np.testing.assert_array_equal(test["states"], big["states"][test["index"]])
    np.testing.assert_array_equal(train["actions"], big["actions"][train["index"]])
    assert train["seed"] == test["seed"] == 0
    again, _ = hand.split(big, test_fraction=0.1, seed=0)
    np.testing.assert_array_equal(again["index"], train["index"])
    small_train, small_test = hand.split(data, test_fraction=0.1)  # at least one trajectory on each side
    assert len(small_train["states"]) == 2 and len(small_test["states"]) == 1
    s, a, s_next = hand.transitions(data)
    assert s.shape == s_next.shape == (N * LENGTH, 31) and a.shape == (N * LENGTH, 20)
    np.testing.assert_array_equal(s_next[0], data["states"][0, 1])


def test_bad_input(data, tmp_path):
    for n in (0, -3, 1.5, "2", True):
        with pytest.raises(ValueError, match="n_traj"):
            hand.generate_trajectories(n, progress=False)
    with pytest.raises(ValueError, match="workers"):
        hand.generate_trajectories(1, workers=0, progress=False)
    with pytest.raises(ValueError, match="length"):
        hand.generate_trajectories(1, length=0, progress=False)
    with pytest.raises(ValueError, match="seed"):
        hand.generate_trajectories(1, seed=-1, progress=False)
    bad = dict(data, states=data["states"][..., :30])
    with pytest.raises(ValueError, match="states must have shape"):
        hand.save_trajectories(tmp_path / "bad.npz", bad)
    with pytest.raises(ValueError, match="actions must have shape"):
        hand.save_trajectories(tmp_path / "bad.npz", dict(data, actions=data["actions"][:, :-1]))
    with pytest.raises(ValueError, match=".npz"):
        hand.save_trajectories(tmp_path / "bad.npy", data)
    for fraction in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="test_fraction"):
            hand.split(data, test_fraction=fraction)
    one = {k: (v[:1] if k in hand.PER_TRAJECTORY_KEYS else v) for k, v in data.items()}
    with pytest.raises(ValueError, match="at least 2"):
        hand.split(one)
    with pytest.raises(FileNotFoundError):
        hand.load_trajectories(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match=r"\(31,\)"):
        hand.render_states(np.zeros((4, 30)))


def test_generate_to_file_writes_a_loadable_file(tmp_path, capsys):
    out = tmp_path / "cli.npz"
    assert hand.generate_to_file(2, seed=5, length=4, out=out, progress=False) == out
    loaded = hand.load_trajectories(out)
    assert loaded["states"].shape == (2, 5, 31) and loaded["seed"] == 5
    assert "cube in hand" in capsys.readouterr().out
    assert hand.default_path(2, 5, 4, root=tmp_path) == tmp_path / "hand" / "hand_n2_len4_seed5.npz"


def test_render_states(tmp_path):
    # In a child process: an EGL context in the test process makes a later import of triton (pulled in by
    # torch's first Adam step elsewhere in the suite) segfault.
    script = (
        "import sys, numpy as np\n"
        "from ebmlib.data import hand\n"
        "d = hand.generate_trajectories(1, seed=0, length=10, progress=False)\n"
        "try:\n"
        "    f = hand.render_states(d['states'][0, ::5], width=64, height=48)\n"
        "except RuntimeError as err:\n"
        "    print('UNAVAILABLE', err); sys.exit(0)\n"
        f"np.save({str(tmp_path / 'frames.npy')!r}, f)\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    if "UNAVAILABLE" in run.stdout:  # no EGL/OSMesa on this machine: rendering is optional
        pytest.skip(f"offscreen rendering unavailable: {run.stdout.strip()}")
    frames = np.load(tmp_path / "frames.npy")
    assert frames.shape == (3, 48, 64, 3) and frames.dtype == np.uint8
    assert frames.std() > 5  # not a blank image
