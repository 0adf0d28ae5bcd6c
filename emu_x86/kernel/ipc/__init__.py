"""System V IPC (ipc/): shm.py. Message queues and semaphores are not implemented."""
