# Batch jobs (`shardforge run JOB.toml`, docs/cli.md) and the Slurm templates (docs/slurm.md).
sf_add_script_test(batch.job SCRIPT batch/batch_job.sh NP 2 LABELS "batch;mpi" TIMEOUT 300
  SELFTEST "the batch outputs are byte-identical")
sf_add_script_test(batch.slurm_templates SCRIPT batch/slurm_templates.sh LABELS batch TIMEOUT 120
  SELFTEST "at least 400 templates")
# One unit pipeline for exports and batch jobs: quantized bases (NF4 double-quant, FP8 block-scaled), three adapter
# kinds, four output kinds, byte-identical to separate exports. Its self-test feeds one wrong export and must see it.
sf_add_script_test(batch.quantized_bases SCRIPT batch/quantized_bases.sh NP 1 2 LABELS "batch;mpi" TIMEOUT 600
  SELFTEST "nf4dq: every batch file is byte-identical")
