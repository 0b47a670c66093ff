# Batch jobs (`shardforge run JOB.toml`, issue 6 item 7) and the Slurm templates (item 8).
sf_add_script_test(batch.job SCRIPT batch/batch_job.sh NP 2 LABELS "batch;mpi" TIMEOUT 300)
sf_add_script_test(batch.slurm_templates SCRIPT batch/slurm_templates.sh LABELS batch TIMEOUT 120)
# One unit pipeline for exports and batch jobs: quantized bases (NF4 double-quant, FP8 block-scaled), three adapter
# kinds, four output kinds, byte-identical to separate exports. Its self-test feeds one wrong export and must see it.
sf_add_script_test(batch.quantized_bases SCRIPT batch/quantized_bases.sh NP 1 2 LABELS "batch;mpi" TIMEOUT 600)
sf_add_script_test(batch.quantized_bases_selftest SCRIPT batch/quantized_bases.sh NP 1 LABELS batch TIMEOUT 300)
set_property(TEST batch.quantized_bases_selftest.np1 APPEND PROPERTY ENVIRONMENT "SF_BATCH_SELFTEST=1")
