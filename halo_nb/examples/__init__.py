"""Sample agents shipped with halo_nb, so the notebooks and the quickstart run from any
folder once halo_nb is installed. The research agent runs on the bundled local model
through llama.cpp's OpenAI-compatible server; its client libraries come with
``pip install halo_nb[examples]`` and are imported only when an agent runs."""
