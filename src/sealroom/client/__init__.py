"""sealroom.client"""
