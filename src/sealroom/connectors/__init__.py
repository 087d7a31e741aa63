"""sealroom.connectors"""
