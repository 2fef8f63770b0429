"""Language-model services shared by several domains: packaged models, text
generation and sentence embeddings."""
