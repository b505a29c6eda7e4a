"""Install with `pip install -e ".[dev]"` (editable: a research repository is meant to be edited)."""

from setuptools import find_packages, setup

setup(
    name="inpainting-reproductions",
    version="0.1.0",
    # The papers are those of reproductions/papers.py's registry, listed in README.md.
    description="TensorFlow 2 / Keras 3 reproductions of image-inpainting papers, trained, "
                "evaluated and compared alike.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["common", "common.*", "reproductions", "reproductions.*"]),
    package_data={"reproductions": ["*/configs/*.cfg", "*/README.md", "app/static/*"]},
    install_requires=[
        "tensorflow>=2.21,<2.23",
        "keras>=3.10,<4",
        "tensorflow-datasets>=4.9.8,<5",
        # tfds.load imports it (through etils.epath) without declaring it.
        "importlib_resources>=6,<8",
        # TensorFlow 2.21 no longer pulls in TensorBoard, which tf.summary needs.
        "tensorboard>=2.21,<2.23",
        "absl-py>=2.1,<3",
        "numpy>=1.26,<3",
        "matplotlib>=3.8,<4",
        "pillow>=10,<14",
        "scikit-image>=0.24,<0.27",
        # FID's matrix square root, as pytorch-fid takes it (scipy.linalg.sqrtm).
        "scipy>=1.11,<2",
        "opencv-python-headless>=4.9,<6",
        "tqdm>=4.66,<5",
        # Reads the authors' released Torch7 models (reproductions/convert.py).
        "torchfile>=0.1,<0.2",
        # inpaint-app (reproductions/app): a small ASGI server and its form parser.
        "starlette>=1.10,<2",
        "uvicorn>=0.30,<1",
        "python-multipart>=0.0.9,<0.1",
    ],
    entry_points={
        "console_scripts": [
            "inpaint=reproductions.inpaint:run",
            "inpaint-eval=reproductions.evaluate:run",
            "inpaint-app=reproductions.app.server:run",
        ],
    },
    extras_require={
        "dev": [
            "pytest>=8,<10",
            "pytest-xdist>=3.5,<4",
            "nbclient>=0.10,<0.12",
            "nbformat>=5.10,<6",
            "ipykernel>=6.29,<8",
            # The app's API tests (Starlette's TestClient) and its page in Chromium.
            "httpx2>=2.17,<3",
            "selenium>=4.20,<5",
        ],
    },
)
