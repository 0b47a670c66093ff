# Resume, progress and run report (docs/engine.md). resume.kill: kill -9 / SIGTERM / SIGUSR1 at random points,
# then --resume (byte-identical); refusals of changed options/inputs. The 20-point version:
# tests/fault/resume_kill_points.sh (docs/testing.md "Resume, progress and run report").
sf_add_script_test(resume.kill SCRIPT resume/kill_resume.sh NP 2 LABELS "fault;resume" TIMEOUT 600)
set_tests_properties(resume.kill.np2 PROPERTIES SKIP_RETURN_CODE 77)
sf_add_script_test(resume.report SCRIPT resume/report_check.sh NP 2 LABELS "resume;report" TIMEOUT 300)
set_tests_properties(resume.report.np2 PROPERTIES SKIP_RETURN_CODE 77)
sf_add_script_test(resume.report_gather SCRIPT resume/report_check.sh NP 2 LABELS "resume;report" TIMEOUT 300)
set_property(TEST resume.report_gather.np2 APPEND PROPERTY ENVIRONMENT "SF_WRITE=gather")
set_tests_properties(resume.report_gather.np2 PROPERTIES SKIP_RETURN_CODE 77)
