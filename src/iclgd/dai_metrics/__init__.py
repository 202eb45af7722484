"""dai_metrics"""
