"""sealroom.api"""
