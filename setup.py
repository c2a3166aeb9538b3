"""The native OTLP decoder (halo_nb/ingest/_wire.c); everything else is in pyproject.toml."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("halo_nb.ingest._wire", ["halo_nb/ingest/_wire.c"],
                             extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra"])])
