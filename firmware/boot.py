# boot.py: runs at every boot before main.py. Kept tiny: the agent is started
# from main.py, so a broken update never stops the REPL from coming up.
import gc

gc.collect()
