"""Hand-shaped trajectories of a known law, for the dynamics tests (test_dynamics, test_robot_hand)."""
import numpy as np

from ebmlib.chapters import robot_hand as D


def walk(n=64, length=12, seed=0, drift=0.0):
    """s_{t+1} = s_t + 0.1 * a_t[:31 cycled] + drift + small noise: every trajectory a new draw of one process."""
    rng = np.random.default_rng(seed)
    actions = rng.uniform(-1, 1, (n, length, D.ACTION_DIM)).astype(np.float32)
    states = np.empty((n, length + 1, D.STATE_DIM), np.float32)
    states[:, 0] = rng.normal(size=(n, D.STATE_DIM))
    cols = np.arange(D.STATE_DIM) % D.ACTION_DIM
    for t in range(length):
        states[:, t + 1] = (states[:, t] + 0.1 * actions[:, t][:, cols] + drift
                            + 0.01 * rng.normal(size=(n, D.STATE_DIM)))
    return {"states": states, "actions": actions, "index": np.arange(n)}
