"""Documents to retrieval: read, chunk, embed, index (Chroma), cluster, search.

Stage outputs in a run directory: chunks.jsonl, index/, clusters.json, manifest.json, ingest_report.json.
"""

from agentdistill.corpus.ingest import IngestReport, ingest, load_chunks, load_clusters

__all__ = ["IngestReport", "ingest", "load_chunks", "load_clusters"]
