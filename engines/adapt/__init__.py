"""``streamer adapt``: from the user's labelled loops to a deployable model folder.

``data`` (frames in memory, with their loops), ``split`` (by loop), ``start`` (the starting model,
narrowed to the labelled classes), ``folder`` (the output folder's rules and state), ``steps``
(export, evaluation, the OOD refit), ``run`` (the steps in order, resumable) and ``card`` (the
model card). Nothing here imports the streamer; INT8 calibration is handed in by the caller.
"""
