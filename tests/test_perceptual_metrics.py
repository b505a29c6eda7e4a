"""LPIPS, FID and KID: the same numbers as their reference packages, and their place in inpaint-eval.

The reference numbers come from tests/fixtures/make_perceptual_fixtures.py,
run once beside PyTorch, lpips, pytorch-fid and torch-fidelity on weights
drawn from seeds: here the same weights are drawn again and go through the
suite's own state-dict mapping, the path a real weight file takes.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import helpers
import torch_writers as tw
from common import experiment
from common import fid
from common import lpips
from common import metric_weights
from common import perceptual_metrics
from common import torch_files
from common.errors import UserError

FIXTURES = os.path.join(helpers.REPO, "tests", "fixtures")
sys.path.insert(0, FIXTURES)
import perceptual_inputs  # noqa: E402


@pytest.fixture(scope="module")
def reference():
    with open(os.path.join(FIXTURES, "perceptual_metrics.json")) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def pairs(reference):
    """The (targets, composites) uint8 photo pairs the references scored."""
    import skimage.data

    photos = [getattr(skimage.data, name)() for name in reference["photos"]]
    targets, composites = perceptual_inputs.photo_pairs(photos)
    assert [int(targets.astype(np.int64).sum()), int(composites.astype(np.int64).sum())] \
        == reference["images_checksum"], "the photo pairs are not the ones the fixture scored"
    return targets, composites


def _signed(images):
    return images.astype(np.float32) / 127.5 - 1.0


def _lpips_model(reference, net):
    entry = reference[f"lpips_{net}"]
    return lpips.LPIPS(net, perceptual_inputs.draw_state_dict(entry["seed"], entry["backbone_shapes"]),
                       perceptual_inputs.draw_state_dict(entry["seed"], entry["linear_shapes"]))


def _inception_state(reference):
    entry = reference["inception"]
    return perceptual_inputs.draw_state_dict(entry["seed"], entry["shapes"])


# --------------------------------------------------------------------------
# The file readers, on files PyTorch wrote.
# --------------------------------------------------------------------------

def test_both_pytorch_file_formats_read_as_pytorch_wrote_them(reference):
    # The zip format: float32, a float64 scalar, int64, float16 and a transposed view.
    small = torch_files.read_pth_state_dict(os.path.join(FIXTURES, "small_zip.pth"))
    expected = reference["small_pth"]
    assert sorted(small) == sorted(expected)
    for key, value in expected.items():
        np.testing.assert_array_equal(small[key], np.asarray(value, small[key].dtype), key)
    assert small["scalar"].dtype == np.float64 and small["scalar"].shape == ()
    assert small["steps"].dtype == np.int64 and small["half"].dtype == np.float16
    np.testing.assert_array_equal(small["transposed"], [[0, 3], [1, 4], [2, 5]])
    # The legacy format (as the lpips release's linear weights): the drawn values.
    legacy = torch_files.read_pth_state_dict(os.path.join(FIXTURES, "small_legacy.pth"))
    entry = reference["lpips_alex"]
    drawn = perceptual_inputs.draw_state_dict(entry["seed"], entry["linear_shapes"])
    assert sorted(legacy) == sorted(drawn) == reference["small_legacy_keys"]
    for key in drawn:
        np.testing.assert_array_equal(legacy[key], drawn[key], key)


def test_a_truncated_legacy_file_is_named_not_misread(tmp_path):
    data = open(os.path.join(FIXTURES, "small_legacy.pth"), "rb").read()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(data[:-100])
    with pytest.raises(UserError, match=r"--lpips_linear_weights .*cut\.pth.* not a readable"):
        torch_files.read_pth_state_dict(str(cut), "--lpips_linear_weights")


# --------------------------------------------------------------------------
# Agreement with the reference packages.
# --------------------------------------------------------------------------

@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_agrees_with_the_lpips_package(reference, pairs, net):
    targets, composites = pairs
    distances = _lpips_model(reference, net)(_signed(composites), _signed(targets)).numpy()
    expected = np.asarray(reference[f"lpips_{net}"]["distances"])
    assert distances.shape == (16,)
    np.testing.assert_allclose(distances, expected, rtol=2e-5)
    # The pairs differ: a test of the plumbing would pass on all-zero distances.
    assert expected.min() > 1e-3


def test_inception_features_fid_and_kid_agree_with_pytorch_fid_and_torch_fidelity(reference,
                                                                                    pairs):
    targets, composites = pairs
    network = fid.FIDInception(_inception_state(reference))
    features = {"targets": network(targets.astype(np.float32) / 255.0).numpy(),
                "composites": network(composites.astype(np.float32) / 255.0).numpy()}
    entry = reference["inception"]
    for name, values in features.items():
        assert values.shape == (16, fid.FEATURES)
        head = np.asarray(entry["features_head"][name])
        np.testing.assert_allclose(values[:, :head.shape[1]], head, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(values.astype(np.float64).sum(1), entry["features_sum"][name],
                                   rtol=1e-5)
    assert fid.fid_from_features(features["composites"], features["targets"]) \
        == pytest.approx(entry["fid"], rel=1e-4)
    kid = fid.kernel_inception_distance(features["composites"], features["targets"],
                                        subsets=entry["kid_subsets"],
                                        subset_size=entry["kid_subset_size"],
                                        seed=entry["kid_seed"])
    assert kid["mean"] == pytest.approx(entry["kid_mean"], rel=1e-4)
    assert kid["std"] == pytest.approx(entry["kid_std"], rel=1e-4)


# --------------------------------------------------------------------------
# The definitions, by hand.
# --------------------------------------------------------------------------

def test_frechet_distance_of_diagonal_gaussians_by_hand():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    var1, var2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    # |mu1 - mu2|^2 = 1 + 0 + 4; sum of (sqrt(v1) - sqrt(v2))^2 = 1 + 1 + 4.
    assert fid.frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(11.0)
    assert fid.frechet_distance(mu1, np.diag(var1), mu1, np.diag(var1)) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="at least 2 images"):
        fid.fid_from_features(np.zeros((1, 3)), np.zeros((5, 3)))


def test_kid_is_the_unbiased_cubic_kernel_mmd():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(5, 4)), rng.normal(1.0, size=(5, 4))
    kernel = lambda a, b: (a @ b / 4 + 1) ** 3  # noqa: E731
    within = sum(kernel(x[i], x[j]) + kernel(y[i], y[j])
                 for i in range(5) for j in range(5) if i != j) / (5 * 4)
    across = sum(kernel(x[i], y[j]) for i in range(5) for j in range(5)) / 25
    # Subsets of the whole set: every subset is the set itself.
    kid = fid.kernel_inception_distance(x, y, subsets=3, subset_size=100)
    assert kid["subset_size"] == 5
    assert kid["mean"] == pytest.approx(within - 2 * across)
    assert kid["std"] == pytest.approx(0.0, abs=1e-12)
    assert fid.kernel_inception_distance(x, x, subsets=3)["mean"] < kid["mean"]


def test_lpips_is_zero_on_identical_images_and_names_a_wrong_file(reference, pairs):
    targets, _ = pairs
    model = _lpips_model(reference, "alex")
    assert np.all(model(_signed(targets[:2]), _signed(targets[:2])).numpy() == 0.0)
    entry = reference["lpips_alex"]
    backbone = perceptual_inputs.draw_state_dict(entry["seed"], entry["backbone_shapes"])
    linear = perceptual_inputs.draw_state_dict(entry["seed"], entry["linear_shapes"])
    with pytest.raises(UserError, match=r"has no 'features.0.weight'.*\(64, 3, 11, 11\)"):
        lpips.LPIPS("alex", {}, linear)
    with pytest.raises(UserError, match=r"'features.0.weight' has shape \(64, 3, 11, 11\), "
                                        r"expected \(64, 3, 3, 3\)"):
        lpips.LPIPS("vgg", backbone, linear)  # AlexNet's weights given for VGG16
    with pytest.raises(UserError, match=r"'lin1.model.1.weight' has shape \(1, 128, 1, 1\), "
                                        r"expected \(1, 192, 1, 1\)"):
        lpips.LPIPS("alex", backbone, {**linear, "lin1.model.1.weight": np.ones((1, 128, 1, 1))})
    with pytest.raises(UserError, match="--lpips_net must be one of alex, vgg"):
        lpips.LPIPS("squeeze", backbone, linear)


# --------------------------------------------------------------------------
# Where the weight files are found.
# --------------------------------------------------------------------------

def _weight_file(source, digest):
    return metric_weights.WeightFile("a test file", "test.pth", source.as_uri(), digest,
                                     "--test_weights")


def test_a_weight_file_is_found_by_flag_in_the_cache_or_downloaded_with_its_hash_checked(
        tmp_path, monkeypatch):
    monkeypatch.delenv(metric_weights.OFFLINE_ENVIRONMENT_VARIABLE, raising=False)
    source = tmp_path / "published.pth"
    source.write_bytes(b"weights")
    digest = torch_files.sha256(str(source))
    cache = tmp_path / "cache"
    # A path given must exist.
    with pytest.raises(UserError, match=r"--test_weights '.*nope.pth' does not exist"):
        metric_weights.locate(_weight_file(source, digest), str(tmp_path / "nope.pth"))
    assert metric_weights.locate(_weight_file(source, digest), str(source)) == (str(source), "")
    # A wrong hash: nothing is kept, and the reason names the file and its flag.
    path, why = metric_weights.locate(_weight_file(source, "0" * 8), None, str(cache))
    assert path is None and "test.pth" in why and "--test_weights=PATH" in why
    assert "not the published 00000000" in why and not os.listdir(cache)
    # The published hash (here a prefix, as torchvision's file names give): downloaded.
    path, why = metric_weights.locate(_weight_file(source, digest[:8]), None, str(cache))
    assert (path, why) == (str(cache / "test.pth"), "")
    assert (cache / "test.pth").read_bytes() == b"weights"
    # Then found in the cache, the source gone.
    source.unlink()
    assert metric_weights.locate(_weight_file(source, digest), None, str(cache))[0] == path
    # Offline: not tried.
    monkeypatch.setenv(metric_weights.OFFLINE_ENVIRONMENT_VARIABLE, "1")
    path, why = metric_weights.locate(_weight_file(source, digest), None, str(tmp_path / "empty"))
    assert path is None and "is not in" in why


# --------------------------------------------------------------------------
# inpaint-eval.
# --------------------------------------------------------------------------

def _eval_command(images, output, *extra):
    return [sys.executable, "-m", "reproductions.evaluate", "--method=telea",
            f"--images={images}", "--masks=bbox", "--image_size=64", f"--output={output}",
            *extra]


def _run(command):
    return subprocess.run(command, capture_output=True, text=True, timeout=600,
                          cwd=helpers.REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})


def test_inpaint_eval_adds_lpips_fid_and_kid_given_their_files_and_skips_them_without(
        reference, pairs, tmp_path):
    from PIL import Image

    targets, _ = pairs
    images = tmp_path / "photos"
    images.mkdir()
    for i, target in enumerate(targets[:5]):
        Image.fromarray(target).save(images / f"p{i}.png")
    # Without weight files (an empty cache, no download): the rest as before.
    result = _run(_eval_command(images, tmp_path / "plain"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "LPIPS ALEX skipped: alexnet-owt-7be5be79.pth" in result.stderr
    assert "--lpips_backbone_weights=PATH" in result.stderr
    assert "FID and KID skipped: pt_inception-2015-12-05-6726825d.pth" in result.stderr
    plain = json.loads((tmp_path / "plain" / "metrics.json").read_text())
    assert "lpips_alex" not in plain["overall"] and "fid" not in plain["overall"]
    assert set(plain["perceptual"]["skipped"]) == {"lpips_alex", "fid", "kid"}

    # With them (drawn weights written as PyTorch files).
    entry = reference["lpips_alex"]
    files = {"--lpips_backbone_weights": perceptual_inputs.draw_state_dict(
                 entry["seed"], entry["backbone_shapes"]),
             "--lpips_linear_weights": perceptual_inputs.draw_state_dict(
                 entry["seed"], entry["linear_shapes"]),
             "--fid_weights": _inception_state(reference)}
    flags = []
    for flag, state in files.items():
        path = tmp_path / f"{flag.strip('-')}.pth"
        tw.write_pth(path, state)
        flags.append(f"{flag}={path}")
    result = _run(_eval_command(images, tmp_path / "scored", *flags))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "FID and KID rest on 5 images" in result.stdout
    scored = json.loads((tmp_path / "scored" / "metrics.json").read_text())
    assert scored["perceptual"]["skipped"] == {} and scored["perceptual"]["images"] == 5
    assert scored["perceptual"]["kid_subset_size"] == 5
    # Per image, the distance between the 8-bit PNGs written beside metrics.json.
    model = _lpips_model(reference, "alex")
    read = lambda name: np.asarray(Image.open(tmp_path / "scored" / name))  # noqa: E731
    composites = np.stack([read(f"p{i}_composite.png") for i in range(5)])
    written = np.stack([read(f"p{i}_target.png") for i in range(5)])
    expected = model(_signed(composites), _signed(written)).numpy()
    values = [record["lpips_alex"] for record in scored["per_image"]]
    np.testing.assert_allclose(values, expected, rtol=1e-4)
    assert scored["overall"]["lpips_alex"] == pytest.approx(np.mean(expected), rel=1e-4)
    for bin_metrics in scored["by_hole_area"].values():
        assert bin_metrics["lpips_alex"] > 0
    network = fid.FIDInception(_inception_state(reference))
    expected_fid = fid.fid_from_features(network(composites / np.float32(255)).numpy(),
                                         network(written / np.float32(255)).numpy())
    assert scored["overall"]["fid"] == pytest.approx(expected_fid, rel=1e-3)
    assert set(scored["overall"]["kid"]) == {"mean", "std"}
    # The PSNR/SSIM/L1 columns did not move, and the tables show the new ones.
    for key in ("psnr", "ssim", "l1_hole"):
        assert scored["overall"][key] == plain["overall"][key]
    from common import evaluation
    table = evaluation.markdown_table([plain, scored])
    assert "| LPIPS (alex) | FID | KID |" in table
    assert table.splitlines()[2].endswith("| n/a | n/a | n/a |")
    assert " ± " in table.splitlines()[3]


def test_a_weight_path_that_does_not_exist_stops_inpaint_eval_before_it_starts(tmp_path):
    images = tmp_path / "photos"
    images.mkdir()
    result = _run(_eval_command(images, tmp_path / "out", "--fid_weights=/nowhere/pt.pth"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "--fid_weights '/nowhere/pt.pth' does not exist" in result.stderr
    assert not (tmp_path / "out").exists()


def test_perceptual_metrics_can_be_turned_off():
    networks = perceptual_metrics.load_networks(perceptual_metrics.PerceptualConfig(enabled=False))
    assert networks.lpips is None and networks.inception is None and networks.skipped == {}
    scorer = perceptual_metrics.SetScorer(networks)
    scorer.add(np.zeros((8, 8, 3)), np.zeros((8, 8, 3)))
    assert scorer.finish() == {"lpips": None, "fid": None, "kid": None, "skipped": {}}


def test_training_evaluation_adds_lpips_when_its_files_are_given(reference, tmp_path):
    import dataclasses

    from common import cli
    from reproductions import papers

    entry = reference["lpips_alex"]
    paths = {}
    for name, shapes in (("backbone", entry["backbone_shapes"]),
                         ("linear", entry["linear_shapes"])):
        paths[name] = tmp_path / f"{name}.pth"
        tw.write_pth(paths[name], perceptual_inputs.draw_state_dict(entry["seed"], shapes))
    # The flags make the run's LPIPS settings, only with --eval_data.
    values = helpers.paper_flags("context_encoder", "--workdir=w", "--eval_data=sample",
                                 f"--lpips_backbone_weights={paths['backbone']}",
                                 f"--lpips_linear_weights={paths['linear']}")
    lpips_config = cli.run_config_from_flags(values).lpips
    assert lpips_config.enabled and not lpips_config.fid
    assert lpips_config.lpips_backbone_weights == str(paths["backbone"])
    assert cli.run_config_from_flags(helpers.paper_flags("context_encoder", "--workdir=w")).lpips \
        is None
    # A one-step run evaluating at its end.
    run = helpers.run_config(tmp_path / "run", 1, batch_size=2, eval_every=1)
    run = dataclasses.replace(run, lpips=lpips_config,
                              data=dataclasses.replace(run.data, eval_data="sample",
                                                       eval_examples=4))
    experiment.run(papers.get("context_encoder"), helpers.smoke_config("context_encoder"), run)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    evaluation_rows = [row for row in rows if row["split"] == "eval"]
    assert len(evaluation_rows) == 1
    assert 0 < evaluation_rows[0]["lpips_alex"] < 10
    assert "psnr" in evaluation_rows[0]


def test_evaluation_speed_benchmark_times_the_three_settings(tmp_path):
    from PIL import Image

    images = tmp_path / "photos"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(images / f"{i}.png")
    result = _run([sys.executable, os.path.join(helpers.REPO, "benchmarks", "evaluation_speed.py"),
                   f"--images={images}", "--limit=3", "--image_size=32"])
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    # No weight file here: random weights at the real shapes, said so.
    assert report["weights"] == {"lpips": "random", "inception": "random"}
    speeds = report["images_per_second"]
    assert set(speeds) == {"none", "lpips_alex", "lpips_alex+fid+kid"}
    assert all(value > 0 for value in speeds.values())
    # The Inception at 299 px and FID's matrix root cost more than no network.
    assert speeds["lpips_alex+fid+kid"] < speeds["none"]


def test_images_too_small_for_the_lpips_backbone_skip_it_with_the_reason(reference):
    networks = perceptual_metrics.PerceptualNetworks(lpips=_lpips_model(reference, "alex"),
                                                     weights={"lpips_alex": {}})
    scorer = perceptual_metrics.SetScorer(networks, image_size=24)
    scorer.add(np.zeros((24, 24, 3)), np.ones((24, 24, 3)))
    result = scorer.finish()
    assert result["lpips"] is None
    assert result["skipped"] == {"lpips_alex": "24 px images are below the 31 px that "
                                               "LPIPS's alex backbone needs"}
    # At the limit it runs (the reference's smallest input for AlexNet).
    scorer = perceptual_metrics.SetScorer(networks, image_size=31)
    scorer.add(np.zeros((31, 31, 3)), np.ones((31, 31, 3)))
    assert scorer.finish()["lpips"][0] > 0
