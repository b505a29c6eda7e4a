"""FID and KID on the pool features of pytorch-fid's Inception, as their references compute them.

The network is pytorch-fid's `InceptionV3` with `use_fid_inception=True`: a
port of the 2015 TensorFlow Inception graph that the original FID code used.
Its blocks differ from torchvision's and Keras' InceptionV3: the A, C and
first E blocks' average pools leave padding out of the mean (TensorFlow's
pooling), and the last E block max-pools where the others average. Images
([0, 1]) are resized to 299x299 bilinearly (half-pixel centres, no
antialiasing, as `F.interpolate(align_corners=False)`), scaled to [-1, 1],
and the 2048 channels of the final average pool are the features. Every
convolution is torchvision's BasicConv2d: no bias, batch norm (eps 1e-3,
running statistics), ReLU.

  * FID (Heusel et al. 2017): pytorch-fid's `calculate_frechet_distance`:
    float64 means and covariances, `scipy.linalg.sqrtm`, with its fallback
    for a singular product and its check of the imaginary part.
  * KID (Binkowski et al. 2018): torch-fidelity's definition, the one
    clean-fid also uses: the unbiased MMD^2 with the cubic polynomial kernel
    k(x, y) = (x.y / d + 1)^3, over `subsets` random subsets of
    `subset_size` features of each set (drawn with NumPy's RandomState(seed)
    as torch-fidelity draws them), reported as mean and standard deviation.
    Computed in float64 (torch-fidelity keeps the features' float32; the
    difference is far below the subsets' spread).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from common import torch_files

INPUT_SIZE = 299
FEATURES = 2048
BATCH_NORM_EPS = 1e-3

# KID's defaults in torch-fidelity.
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
KID_SEED = 2020
# pytorch-fid's diagonal offset for a singular covariance product.
FID_EPS = 1e-6


def _convs_of_stem():
    """(name, out, in, (kh, kw), stride, (pad_h, pad_w)) of the layers before Mixed_5b."""
    return [("Conv2d_1a_3x3", 32, 3, (3, 3), 2, (0, 0)),
            ("Conv2d_2a_3x3", 32, 32, (3, 3), 1, (0, 0)),
            ("Conv2d_2b_3x3", 64, 32, (3, 3), 1, (1, 1)),
            ("Conv2d_3b_1x1", 80, 64, (1, 1), 1, (0, 0)),
            ("Conv2d_4a_3x3", 192, 80, (3, 3), 1, (0, 0))]


def _convs_a(name, c_in, pool_features):
    return [(f"{name}.branch1x1", 64, c_in, (1, 1), 1, (0, 0)),
            (f"{name}.branch5x5_1", 48, c_in, (1, 1), 1, (0, 0)),
            (f"{name}.branch5x5_2", 64, 48, (5, 5), 1, (2, 2)),
            (f"{name}.branch3x3dbl_1", 64, c_in, (1, 1), 1, (0, 0)),
            (f"{name}.branch3x3dbl_2", 96, 64, (3, 3), 1, (1, 1)),
            (f"{name}.branch3x3dbl_3", 96, 96, (3, 3), 1, (1, 1)),
            (f"{name}.branch_pool", pool_features, c_in, (1, 1), 1, (0, 0))]


def _convs_b(name, c_in):
    return [(f"{name}.branch3x3", 384, c_in, (3, 3), 2, (0, 0)),
            (f"{name}.branch3x3dbl_1", 64, c_in, (1, 1), 1, (0, 0)),
            (f"{name}.branch3x3dbl_2", 96, 64, (3, 3), 1, (1, 1)),
            (f"{name}.branch3x3dbl_3", 96, 96, (3, 3), 2, (0, 0))]


def _convs_c(name, c_in, c7):
    return [(f"{name}.branch1x1", 192, c_in, (1, 1), 1, (0, 0)),
            (f"{name}.branch7x7_1", c7, c_in, (1, 1), 1, (0, 0)),
            (f"{name}.branch7x7_2", c7, c7, (1, 7), 1, (0, 3)),
            (f"{name}.branch7x7_3", 192, c7, (7, 1), 1, (3, 0)),
            (f"{name}.branch7x7dbl_1", c7, c_in, (1, 1), 1, (0, 0)),
            (f"{name}.branch7x7dbl_2", c7, c7, (7, 1), 1, (3, 0)),
            (f"{name}.branch7x7dbl_3", c7, c7, (1, 7), 1, (0, 3)),
            (f"{name}.branch7x7dbl_4", c7, c7, (7, 1), 1, (3, 0)),
            (f"{name}.branch7x7dbl_5", 192, c7, (1, 7), 1, (0, 3)),
            (f"{name}.branch_pool", 192, c_in, (1, 1), 1, (0, 0))]


def _convs_d(name, c_in):
    return [(f"{name}.branch3x3_1", 192, c_in, (1, 1), 1, (0, 0)),
            (f"{name}.branch3x3_2", 320, 192, (3, 3), 2, (0, 0)),
            (f"{name}.branch7x7x3_1", 192, c_in, (1, 1), 1, (0, 0)),
            (f"{name}.branch7x7x3_2", 192, 192, (1, 7), 1, (0, 3)),
            (f"{name}.branch7x7x3_3", 192, 192, (7, 1), 1, (3, 0)),
            (f"{name}.branch7x7x3_4", 192, 192, (3, 3), 2, (0, 0))]


def _convs_e(name, c_in):
    return [(f"{name}.branch1x1", 320, c_in, (1, 1), 1, (0, 0)),
            (f"{name}.branch3x3_1", 384, c_in, (1, 1), 1, (0, 0)),
            (f"{name}.branch3x3_2a", 384, 384, (1, 3), 1, (0, 1)),
            (f"{name}.branch3x3_2b", 384, 384, (3, 1), 1, (1, 0)),
            (f"{name}.branch3x3dbl_1", 448, c_in, (1, 1), 1, (0, 0)),
            (f"{name}.branch3x3dbl_2", 384, 448, (3, 3), 1, (1, 1)),
            (f"{name}.branch3x3dbl_3a", 384, 384, (1, 3), 1, (0, 1)),
            (f"{name}.branch3x3dbl_3b", 384, 384, (3, 1), 1, (1, 0)),
            (f"{name}.branch_pool", 192, c_in, (1, 1), 1, (0, 0))]


def conv_specs() -> list[tuple]:
    """Every BasicConv2d of the network up to the pool features, as
    (state-dict prefix, out, in, (kh, kw), stride, (pad_h, pad_w))."""
    return (_convs_of_stem()
            + _convs_a("Mixed_5b", 192, 32) + _convs_a("Mixed_5c", 256, 64)
            + _convs_a("Mixed_5d", 288, 64) + _convs_b("Mixed_6a", 288)
            + _convs_c("Mixed_6b", 768, 128) + _convs_c("Mixed_6c", 768, 160)
            + _convs_c("Mixed_6d", 768, 160) + _convs_c("Mixed_6e", 768, 192)
            + _convs_d("Mixed_7a", 768) + _convs_e("Mixed_7b", 1280) + _convs_e("Mixed_7c", 2048))


# What a wrong file's error asks.
_WHICH_FILE = "Is it pytorch-fid's pt_inception-2015-12-05 file?"


def inception_weights(state: dict, source: str = "the Inception weights") -> dict:
    """{prefix: (HWIO kernel, batch-norm scale, batch-norm shift)} from pytorch-fid's state
    dict (torchvision's key names: `Mixed_5b.branch1x1.conv.weight`, `...bn.running_var`).

    The batch norm in inference is y = (x - mean) / sqrt(var + eps) * gamma + beta,
    kept as y = x * scale + shift.
    """
    weights = {}
    for prefix, c_out, c_in, (kh, kw), _, _ in conv_specs():
        kernel = torch_files.state_array(state, f"{prefix}.conv.weight", (c_out, c_in, kh, kw),
                                         source, _WHICH_FILE)
        gamma, beta, mean, var = (torch_files.state_array(state, f"{prefix}.bn.{name}", (c_out,),
                                                          source, _WHICH_FILE)
                                  for name in ("weight", "bias", "running_mean", "running_var"))
        scale = gamma / np.sqrt(var.astype(np.float64) + BATCH_NORM_EPS)
        weights[prefix] = (kernel.transpose(2, 3, 1, 0), scale.astype(np.float32),
                           (beta - mean * scale).astype(np.float32))
    return weights


class FIDInception(tf.Module):
    """pytorch-fid's Inception up to its 2048 pool features.

    Call it with [N, H, W, 3] images in [0, 1] (pytorch-fid's range), any size;
    it returns [N, 2048] float32 features.
    """

    def __init__(self, state: dict, source: str = "the Inception weights"):
        super().__init__(name="fid_inception")
        self._specs = {spec[0]: spec for spec in conv_specs()}
        self._weights = {prefix: tuple(tf.constant(a) for a in arrays)
                         for prefix, arrays in inception_weights(state, source).items()}

    def _conv(self, x, prefix):
        _, _, _, _, stride, (pad_h, pad_w) = self._specs[prefix]
        kernel, scale, shift = self._weights[prefix]
        x = tf.nn.conv2d(x, kernel, stride, [[0, 0], [pad_h, pad_h], [pad_w, pad_w], [0, 0]])
        return tf.nn.relu(x * scale + shift)

    def _chain(self, x, prefix, names):
        for name in names:
            x = self._conv(x, f"{prefix}.{name}")
        return x

    @staticmethod
    def _average_pool(x):
        # 3x3, stride 1, padding 1 without the padding in the mean
        # (F.avg_pool2d(count_include_pad=False)): TensorFlow's SAME pooling.
        return tf.nn.avg_pool2d(x, 3, 1, "SAME")

    def _block_a(self, x, p):
        return tf.concat([
            self._conv(x, f"{p}.branch1x1"),
            self._chain(x, p, ["branch5x5_1", "branch5x5_2"]),
            self._chain(x, p, ["branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"]),
            self._conv(self._average_pool(x), f"{p}.branch_pool")], -1)

    def _block_b(self, x, p):
        return tf.concat([
            self._conv(x, f"{p}.branch3x3"),
            self._chain(x, p, ["branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"]),
            tf.nn.max_pool2d(x, 3, 2, "VALID")], -1)

    def _block_c(self, x, p):
        return tf.concat([
            self._conv(x, f"{p}.branch1x1"),
            self._chain(x, p, ["branch7x7_1", "branch7x7_2", "branch7x7_3"]),
            self._chain(x, p, [f"branch7x7dbl_{i}" for i in range(1, 6)]),
            self._conv(self._average_pool(x), f"{p}.branch_pool")], -1)

    def _block_d(self, x, p):
        return tf.concat([
            self._chain(x, p, ["branch3x3_1", "branch3x3_2"]),
            self._chain(x, p, [f"branch7x7x3_{i}" for i in range(1, 5)]),
            tf.nn.max_pool2d(x, 3, 2, "VALID")], -1)

    def _block_e(self, x, p, max_pool: bool):
        branch3x3 = self._conv(x, f"{p}.branch3x3_1")
        branch3x3dbl = self._chain(x, p, ["branch3x3dbl_1", "branch3x3dbl_2"])
        # The FID graph's last block max-pools (3x3, stride 1, padding 1).
        pooled = tf.nn.max_pool2d(x, 3, 1, "SAME") if max_pool else self._average_pool(x)
        return tf.concat([
            self._conv(x, f"{p}.branch1x1"),
            self._conv(branch3x3, f"{p}.branch3x3_2a"), self._conv(branch3x3, f"{p}.branch3x3_2b"),
            self._conv(branch3x3dbl, f"{p}.branch3x3dbl_3a"),
            self._conv(branch3x3dbl, f"{p}.branch3x3dbl_3b"),
            self._conv(pooled, f"{p}.branch_pool")], -1)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def __call__(self, images: tf.Tensor) -> tf.Tensor:
        x = tf.image.resize(images, (INPUT_SIZE, INPUT_SIZE), "bilinear", antialias=False)
        x = 2.0 * x - 1.0
        for prefix in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3"):
            x = self._conv(x, prefix)
        x = tf.nn.max_pool2d(x, 3, 2, "VALID")
        for prefix in ("Conv2d_3b_1x1", "Conv2d_4a_3x3"):
            x = self._conv(x, prefix)
        x = tf.nn.max_pool2d(x, 3, 2, "VALID")
        for prefix in ("Mixed_5b", "Mixed_5c", "Mixed_5d"):
            x = self._block_a(x, prefix)
        x = self._block_b(x, "Mixed_6a")
        for prefix in ("Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"):
            x = self._block_c(x, prefix)
        x = self._block_d(x, "Mixed_7a")
        x = self._block_e(x, "Mixed_7b", max_pool=False)
        x = self._block_e(x, "Mixed_7c", max_pool=True)
        return tf.reduce_mean(x, axis=[1, 2])


# --------------------------------------------------------------------------
# The distances between two sets of features.
# --------------------------------------------------------------------------

def activation_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, covariance) of [N, D] features in float64, as pytorch-fid computes them."""
    features = np.asarray(features)
    return np.mean(features, axis=0, dtype=np.float64), np.cov(features, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = FID_EPS) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 sqrt(S1 S2)), exactly as pytorch-fid.

    When the product's square root is not finite, eps is added to both
    diagonals; an imaginary part above 1e-3 on the diagonal is an error.
    """
    import scipy.linalg

    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"statistics of different sizes: {mu1.shape} and {mu2.shape}")
    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"FID: imaginary component {np.max(np.abs(covmean.imag))} in the "
                             "square root of the covariance product")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def fid_from_features(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID between two [N, D] feature sets (N >= 2 each)."""
    for features in (features_a, features_b):
        if len(features) < 2:
            raise ValueError(f"FID needs at least 2 images a set, got {len(features)}")
    return frechet_distance(*activation_statistics(features_a),
                            *activation_statistics(features_b))


def _polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def _unbiased_mmd2(k_xx: np.ndarray, k_xy: np.ndarray, k_yy: np.ndarray) -> float:
    """torch-fidelity's `mmd2(..., mmd_est="unbiased")`: diagonals of the
    within-set kernels left out, the cross term kept whole."""
    m = k_xx.shape[0]
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.sum() / (m * m))


def kernel_inception_distance(features_a: np.ndarray, features_b: np.ndarray,
                              subsets: int = KID_SUBSETS, subset_size: int = KID_SUBSET_SIZE,
                              seed: int = KID_SEED) -> dict:
    """{"mean", "std", "subsets", "subset_size"} of KID between two [N, D] feature sets.

    `subset_size` above the smaller set's size is lowered to it (torch-fidelity
    refuses instead; clean-fid lowers it too), and recorded.
    """
    features_a = np.asarray(features_a, np.float64)
    features_b = np.asarray(features_b, np.float64)
    size = min(subset_size, len(features_a), len(features_b))
    if size < 2:
        raise ValueError("KID needs at least 2 images a set")
    rng = np.random.RandomState(seed)
    values = np.zeros(subsets)
    for i in range(subsets):
        x = features_a[rng.choice(len(features_a), size, replace=False)]
        y = features_b[rng.choice(len(features_b), size, replace=False)]
        values[i] = _unbiased_mmd2(_polynomial_kernel(x, x), _polynomial_kernel(x, y),
                                   _polynomial_kernel(y, y))
    return {"mean": float(values.mean()), "std": float(values.std()), "subsets": subsets,
            "subset_size": size}
