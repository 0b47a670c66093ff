# Resume, progress and run report (docs/engine.md). resume.kill: kill -9 / SIGTERM / SIGUSR1 at random points,
# then --resume (byte-identical); refusals of changed options/inputs. The 20-point version:
# tests/fault/resume_kill_points.sh (docs/testing.md "Resume, progress and run report").
sf_add_script_test(resume.kill SCRIPT resume/kill_resume.sh NP 2 LABELS "fault;resume" TIMEOUT 600
  SELFTEST "kill -9 one rank.* the resumed output equals")
sf_add_script_test(resume.report SCRIPT resume/report_check.sh NP 2 LABELS "resume;report" TIMEOUT 300
  SELFTEST "the summary counts the NaN values")
sf_add_script_test(resume.report_gather SCRIPT resume/report_check.sh NP 2 LABELS "resume;report" TIMEOUT 300
  SELFTEST "the summary counts the NaN values")
set_property(TEST resume.report_gather.np2 APPEND PROPERTY ENVIRONMENT "SF_WRITE=gather")
