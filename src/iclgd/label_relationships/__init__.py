"""label_relationships"""
