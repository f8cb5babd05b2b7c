from _bootstrap import finish, start

start(snakemake)
from convbench.assessment import adopt_staged, assess_experiment, experiment_title

sm = snakemake
settings = dict(sm.params.settings)
# The training job evaluated this model already, unless a setting changed since: then TensorFlow starts here.
if not adopt_staged(sm.output, settings, sm.input.model, sm.input.manifest):
    from convbench.runtime import configure_tensorflow

    configure_tensorflow(threads=sm.threads)
    from convbench.architectures import load_model
    from convbench.prepared import load_prepared

    model = load_model(sm.input.model)  # once, for the metrics and the figures
    assess_experiment(model, sm.input.model, load_prepared(sm.input.data, sm.input.manifest), sm.input.history,
                      sm.output, settings, experiment_title(sm.wildcards))
finish()
