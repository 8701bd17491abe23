"""Physics grasp trials in PyBullet (seed 001's self-supervised robot trials, simulated).

``scene``: the table, its randomised appearance and lighting, ``random_urdfs`` objects and the
top-down RGB-D camera; ``gripper``: a Robotiq 2F-85-sized parallel-jaw gripper and one trial
(descend, close, lift, shake); ``planners``: random / analytic / model grasp choosers;
``runs``: parallel scenes written as attempts.csv + images and a bag.

``pybullet`` is imported lazily (only where a scene is built), so nothing of the ROS runtime
needs it; it is a training-side dependency (requirements-train.txt).
"""
