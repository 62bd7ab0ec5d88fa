# The slots layer (hardware adapters). mcu_hook: the application's hook for an attached MCU's image,
# kept here because this package stays loaded between the agent's phases (fota.slots.fileslot).
mcu_hook = None
