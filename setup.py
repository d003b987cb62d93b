"""Everything about the package is in pyproject.toml; this file only keeps the study scripts out of
the wheel. They are programs run from a checkout (``python -m rtstyle.benchmarks.temporal ...``, with
the editable install of ``make setup``) to produce the committed results in benchmarks/results,
not library code: nothing in the package imports them, and each ends in ``if __name__ == "__main__"``.
``gpu_check`` (and ``gpu_wheels``, its wheel plan) are the exceptions that ship (issue 19: ``python -m rtstyle.benchmarks.gpu_check`` on a
machine given only a wheel; it runs the checkout's tests when it finds them in the working directory).
tests/test_packaging.py checks the built wheel against this list."""

from setuptools import setup
from setuptools.command.build_py import build_py

SHIPPED_COMMANDS = {"rtstyle.benchmarks": {"gpu_check", "gpu_wheels"}}  # programs that ship (``python -m``), not studies
STUDY_SCRIPTS = {
    "rtstyle.benchmarks": {"adain_eval", "cluster_scaling", "cpu_memory", "cpu_speed", "encoder_presets",
                           "flicker_study", "readme_figures", "serve_latency", "temporal",
                           # issue 31's studies (a checkout's ../shared data; results in benchmarks/results)
                           "arch_study", "photo_split", "sr_heldout", "style_models", "train_speed"},
}


class BuildPyWithoutStudies(build_py):
    def find_package_modules(self, package, package_dir):
        skip = STUDY_SCRIPTS.get(package, set())
        return [m for m in super().find_package_modules(package, package_dir) if m[1] not in skip]


setup(cmdclass={"build_py": BuildPyWithoutStudies})
