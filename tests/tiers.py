"""Which tier each test file is in: the one place that says so.

    fast tier     every file in FAST: no kernel, no subprocess of nbgrader, no server;
                  `make check` runs it (with ruff) in a few minutes
    integration   runs kernels, nbgrader's commands or a whole batch
    sandbox       needs root's namespaces and cgroups (fails, never skips, without them)
    postgres      starts a PostgreSQL server
    browser       starts JupyterLab or Chromium
    bench         runs a benchmark script end to end

`make test` runs every tier. The root conftest marks each test by its file's entry here; a
test may add marks of its own. A test file that is in neither table fails the suite
(tests/test_tiers.py), so a new file is put in a tier on purpose.
"""

INTEGRATION = "integration"
SANDBOX = "sandbox"
POSTGRES = "postgres"
BROWSER = "browser"
BENCH = "bench"
MARKS = {
    INTEGRATION: "runs kernels, nbgrader's commands or a whole batch",
    SANDBOX: "needs root's namespaces and cgroups",
    POSTGRES: "starts a PostgreSQL server",
    BROWSER: "starts JupyterLab or Chromium",
    BENCH: "runs a benchmark script end to end",
}

FAST = frozenset({
    "tests/docs/test_command_reference.py",
    "tests/docs/test_docs_commands.py",
    "tests/docs/test_docs_links.py",
    "tests/docs/test_docs_messages.py",
    "tests/grader/labs/test_c2_w2_answers.py",
    "tests/grader/labs/test_c2_w2_hidden_tests.py",
    "tests/grader/labs/test_c2_w2_judges.py",
    "tests/grader/publish/test_feedback_exporter.py",
    "tests/grader/publish/test_journal_secrets.py",
    "tests/grader/publish/test_publisher_backlog.py",
    "tests/grader/publish/test_private_out.py",
    "tests/grader/publish/test_page_penalties.py",
    "tests/grader/publish/test_rebuild.py",
    "tests/grader/publish/test_report.py",
    "tests/grader/publish/test_standalone.py",  # but its browser test, marked there
    "tests/grader/test_captures.py",
    "tests/grader/test_cells.py",
    "tests/grader/test_cgroups_v2.py",  # a model of cgroup v2; its real-mount tests skip
    "tests/grader/test_cli.py",
    "tests/grader/test_cluster_logs.py",
    "tests/grader/test_errors.py",
    "tests/grader/test_generated_course.py",
    "tests/grader/test_grading_version.py",
    "tests/grader/test_init.py",
    "tests/grader/test_import_turns.py",
    "tests/grader/test_intake.py",
    "tests/grader/test_intake_cells.py",
    "tests/grader/test_kernel_client.py",
    "tests/grader/test_kernel_uids.py",
    "tests/grader/test_lateness.py",
    "tests/grader/test_layout.py",
    "tests/grader/test_nbclient_seam.py",
    "tests/grader/test_prepare.py",
    "tests/grader/test_release_files.py",
    "tests/grader/test_runner.py",
    "tests/grader/test_scratch.py",
    "tests/grader/test_kernel_sockets.py",
    "tests/grader/test_stage_clock.py",
    "tests/grader/test_student_ids.py",
    "tests/grader/test_type_hints.py",
    "tests/grader/test_unfinished_runs.py",
    "tests/grader/test_warm_start.py",
    "tests/lab/test_autils.py",
    "tests/lab/test_lab_utils_softmax.py",
    "tests/lab/test_notebook_source.py",
    "tests/lab/test_notebook_text.py",
    "tests/lab/test_own_words.py",
    "tests/lab/test_public_tests.py",
    "tests/test_tiers.py",
    "tests/tools/test_build_data.py",
    "tests/tools/test_draw_figures.py",
    "tests/tools/test_loopback_cluster.py",
    "tests/tools/test_tls_files.py",
})

SLOW = {
    "tests/bench/test_bench_grading.py": (BENCH, INTEGRATION, SANDBOX),
    "tests/bench/test_bench_notebook.py": (BENCH, INTEGRATION),
    "tests/bench/test_bench_profile.py": (BENCH, INTEGRATION, SANDBOX),
    "tests/bench/test_bench_coordinator.py": (BENCH, INTEGRATION),
    "tests/bench/test_bench_scale.py": (BENCH, INTEGRATION),
    "tests/bench/test_bench_validate.py": (BENCH, INTEGRATION),
    "tests/browser/test_lab_in_jupyterlab.py": (BROWSER, INTEGRATION),
    "tests/docs/test_demo.py": (INTEGRATION,),
    "tests/grader/labs/test_c2_w2_nbgrader.py": (INTEGRATION,),
    "tests/grader/publish/test_feedback_pages.py": (INTEGRATION,),
    "tests/grader/publish/test_on_worker.py": (INTEGRATION,),
    "tests/grader/publish/test_page_server.py": (INTEGRATION,),
    "tests/grader/publish/test_gradebook_rows.py": (INTEGRATION,),
    "tests/grader/publish/test_publish.py": (INTEGRATION,),
    "tests/grader/publish/test_standalone_pages.py": (INTEGRATION,),  # and a browser test
    "tests/grader/test_attacks.py": (INTEGRATION, SANDBOX),
    "tests/grader/test_attacks_bytes.py": (INTEGRATION, SANDBOX),
    "tests/grader/test_attacks_kernel.py": (INTEGRATION, SANDBOX),
    "tests/grader/test_attacks_outputs.py": (INTEGRATION, SANDBOX),
    "tests/grader/test_attacks_secrets.py": (INTEGRATION, SANDBOX),
    "tests/grader/test_autograde.py": (INTEGRATION, SANDBOX),
    "tests/grader/test_cgroups.py": (INTEGRATION, SANDBOX),
    "tests/grader/test_cluster.py": (INTEGRATION,),
    "tests/grader/test_crash.py": (INTEGRATION, SANDBOX),
    "tests/grader/test_generated_course_by_nbgrader.py": (INTEGRATION,),
    "tests/grader/test_execution.py": (INTEGRATION,),
    "tests/grader/test_grader_files.py": (INTEGRATION, SANDBOX),
    "tests/grader/test_interrupt.py": (INTEGRATION, SANDBOX),
    "tests/grader/test_check_my_work.py": (INTEGRATION,),
    "tests/grader/test_late_work.py": (INTEGRATION, SANDBOX),
    "tests/grader/test_packaging.py": (INTEGRATION, SANDBOX),
    "tests/grader/test_postgres.py": (POSTGRES, INTEGRATION),
    "tests/grader/test_release.py": (INTEGRATION,),
    "tests/grader/test_runners.py": (INTEGRATION,),
    "tests/grader/test_sandbox.py": (INTEGRATION, SANDBOX),
    "tests/grader/test_sandbox_attacks.py": (INTEGRATION, SANDBOX),
    "tests/grader/test_syscalls.py": (INTEGRATION, SANDBOX),
    "tests/grader/test_tiny_lab.py": (INTEGRATION,),
    "tests/grader/test_validate.py": (INTEGRATION, SANDBOX),
    "tests/grader/test_warm_kernels.py": (INTEGRATION,),
    "tests/grader/test_kept_templates.py": (INTEGRATION,),
    "tests/lab/test_notebook.py": (INTEGRATION,),
    "tests/lab/test_release_links.py": (INTEGRATION,),
    "tests/lab/test_students_page.py": (INTEGRATION,),
    "tests/tools/test_install_system_packages.py": (INTEGRATION,),
    "tests/tools/test_make_clean.py": (INTEGRATION,),
    "tests/tools/test_student_lab.py": (INTEGRATION, BROWSER),
}

# What `make check` deselects: everything but the fast tier.
NOT_FAST = " or ".join(MARKS)
