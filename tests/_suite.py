"""How the suite is split for tests/run_suite.py."""

#: Modules of the largest models and the longest parity runs ("heavy"): ``tests/run_suite.py``
#: runs them first, alone in one process with two torch threads (the other modules then run
#: on two pytest-xdist workers: two large models at once would double the peak memory).
#: In one plain ``pytest`` run they also come first, while the process is still small (the
#: GUI tests leave napari's own allocations behind).  Largest first.
HEAVY = ("tests/models/test_sam_vit_l.py", "tests/models/test_sam_networks.py",
         "tests/test_precision_accuracy.py", "tests/test_yolo_parity.py",
         "tests/models/test_sam2_video.py", "tests/models/test_sam2_image.py",
         "tests/test_everything_grid_parity.py", "tests/models/test_tiny_vit.py",
         "tests/models/test_efficient_sam.py", "tests/models/test_efficient_sam_file.py",
         "tests/test_everything_bf16.py", "tests/test_predictor_parity.py",
         "tests/test_docs_examples.py", "tests/test_fastsam_interactive.py",
         "tests/test_everything_mechanics.py", "tests/test_predictor_efficient_sam.py",
         # not long, but large at once: dask worker processes, official-size files
         "tests/batch/test_batch_cluster.py", "tests/test_checkpoint_errors.py",
         "tests/test_loading_copies.py")
