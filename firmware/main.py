# main.py: start the OTA agent. It settles the update in flight (confirm or report a rollback),
# then polls the cloud configured in /ota.json. It never raises: errors are printed as JSON
# events and the board stays up, with its REPL.
from fota.app import agent

agent.main()
