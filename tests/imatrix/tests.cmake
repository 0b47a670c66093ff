sf_add_script_test(imatrix.export SCRIPT imatrix/imatrix_export.sh NP 1 2 LABELS conformance TIMEOUT 600
  SELFTEST "the imatrix changes Q4_K_M")
