"""Never started: both clients fail before they could start the experiment."""
