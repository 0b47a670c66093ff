# MPI integration tests (label mpi): the same script at several rank counts.
sf_add_script_test(mpi.identical_outputs SCRIPT mpi/identical_outputs.sh NP 1 2 3 4 LABELS mpi TIMEOUT 600)
