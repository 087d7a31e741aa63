"""sealroom.coordinator"""
