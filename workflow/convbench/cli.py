"""`convbench` on the command line: use what a study trained.

    convbench predict results/experiments/digits/bn_cnn/default/seed1 photos/ --top-k 3 \
        --output results/predictions/photos.csv
"""

import argparse
import contextlib
import os
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="convbench", description="Use what a convbench study trained.")
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser(
        "predict", help="top-k classes of PNG/JPEG images with a trained model",
        description="Top-k classes of PNG/JPEG images (files or folders, any size and colour mode) with a trained "
                    "model; each image is converted exactly as the model's training data was.")
    predict.add_argument("model", help="an experiment folder (results/experiments/<dataset>/<arch>/<variant>/seed<N>) "
                                       "or its model.keras (with train_meta.json beside it)")
    predict.add_argument("images", nargs="+", help="image files or folders (sub-folders included)")
    predict.add_argument("--top-k", type=int, default=3, help="classes per image (default 3)")
    predict.add_argument("--output", "-o", help="CSV file to write (default: standard output)")
    predict.add_argument("--skip-bad", action="store_true",
                         help="skip (and list) files that are not readable PNG/JPEG images instead of stopping")
    predict.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads (default: all)")
    predict.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up messages")
    args = parser.parse_args(argv)

    from convbench.deploy.predict import PredictError, check_inputs
    from convbench.deploy.predict import predict as run_prediction

    try:
        check_inputs(args.model, args.images, args.top_k)  # bad input is named before TensorFlow's seconds of start-up
        with contextlib.nullcontext() if args.verbose else quiet_native_stderr():
            from convbench.base.runtime import configure_tensorflow

            configure_tensorflow(threads=args.threads)
        rows, skipped = run_prediction(args.model, args.images, args.output, top_k=args.top_k, skip_bad=args.skip_bad)
    except PredictError as error:
        parser.exit(2, f"convbench predict: error: {error}\n")
    for message in skipped:
        print(f"skipped {message}", file=sys.stderr)
    if args.output:
        print(f"{len(rows)} images predicted -> {args.output}" + (f" ({len(skipped)} skipped)" if skipped else ""),
              file=sys.stderr)


@contextlib.contextmanager
def quiet_native_stderr():
    """TensorFlow's C++ start-up lines (oneDNN, CUDA probing) go to file descriptor 2 whatever
    TF_CPP_MIN_LOG_LEVEL says; hide them while TensorFlow starts. Python errors still show."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


if __name__ == "__main__":
    main()
