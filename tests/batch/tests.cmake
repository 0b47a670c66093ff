# Batch jobs (`shardforge run JOB.toml`, docs/cli.md) and the Slurm templates (docs/slurm.md).
sf_add_script_test(batch.job SCRIPT batch/batch_job.sh NP 2 LABELS "batch;mpi" TIMEOUT 300)
sf_add_script_test(batch.slurm_templates SCRIPT batch/slurm_templates.sh LABELS batch TIMEOUT 120
  SELFTEST "at least 400 templates")
