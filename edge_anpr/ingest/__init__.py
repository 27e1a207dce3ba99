"""Ingest: UDP datagrams in, complete frames out (wire formats in ../shared/PROTOCOL.md)."""
