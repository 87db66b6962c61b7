"""Builds connpack's two C extensions; everything else is in pyproject.toml.

connpack/_rngc.c is the weight generator, connpack/_gatec.c the connectivity gates of the trainers (one fused
pass each on CPU). -ffp-contract=off: no fused multiply-add, so every float operation rounds exactly as the
numpy/torch reference code does. If the compiler is missing the build still succeeds and connpack uses the
reference code (same bytes, slower).
"""

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    def run(self):
        try:
            super().run()
        except Exception as e:  # no compiler: the pure-numpy generator is used
            print(f"connpack: C extension not built ({e}); using the reference code")

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as e:
            print(f"connpack: C extension not built ({e}); using the reference code")


FLAGS = ["-O3", "-ffp-contract=off", "-fno-fast-math", "-fno-math-errno", "-std=c99"]

setup(
    ext_modules=[
        Extension(f"connpack.{name}", [f"connpack/{name}.c"], extra_compile_args=FLAGS) for name in ("_rngc", "_gatec")
    ],
    cmdclass={"build_ext": OptionalBuildExt},
)
