"""waiters"""
