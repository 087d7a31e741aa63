"""sealroom.storage"""
