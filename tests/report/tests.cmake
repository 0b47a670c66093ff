# The HTML page of a run report (`shardforge report RUN.h5 --html PAGE`; docs/engine.md "Resume, progress and run
# report"): checked against the HDF5 report (report.html), and rendered in headless Chromium with a screenshot kept
# under the build tree's Testing/artifacts (report.chromium; exit 77, a skip that tests/run.sh fails, without
# Debian's chromium, which jobs/install-deps.sh --test installs).
sf_add_script_test(report.html SCRIPT report/html_page.sh NP 2 LABELS "report" TIMEOUT 300
  SELFTEST "html_check.py: the page shows")
sf_add_script_test(report.chromium SCRIPT report/chromium.sh NP 2 LABELS "report;browser" TIMEOUT 300
  SELFTEST "html_check.py: Chromium rendered")
set_tests_properties(report.chromium.np2 report.chromium.selftest PROPERTIES SKIP_RETURN_CODE 77)
