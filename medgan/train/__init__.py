"""Training: pure jitted steps, their state and losses, and the loop around them.

`state`, `classifier_step`, `gan_step` (+ `losses`, `ada`), `progressive`
(growth schedule of the progressive GAN), `loop` (checkpoints, resume,
preemption, metrics, progress), `sampling` (a trained generator's images) and
`checkpoints` (the saved networks one job hands to the next).
"""
