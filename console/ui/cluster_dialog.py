"""Add or edit a cluster: the two agent addresses, the CA and the console's certificate
and key, and the key's passphrase (kept in the OS keyring, never in the settings file)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from console.settings.clusters import (
    ClusterEntry,
    SettingsError,
    entry_from_cluster_toml,
    make_entry,
)
from console.settings.secrets import SecretStore


class ClusterDialog(QDialog):
    saved = Signal(object, str, bool)  # ClusterEntry, passphrase ("" = none), keep in keyring

    def __init__(
        self, secrets: SecretStore, entry: ClusterEntry | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Edit cluster" if entry else "Add cluster")
        self.setMinimumWidth(560)
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.name = QLineEdit(entry.name if entry else "")
        self.node1 = QLineEdit(entry.node1 if entry else "")
        self.node2 = QLineEdit(entry.node2 if entry else "")
        self.node1.setPlaceholderText("10.0.0.1:7700")
        self.node2.setPlaceholderText("10.0.0.2:7700")
        self.ca = QLineEdit(str(entry.ca) if entry else "")
        self.cert = QLineEdit(str(entry.cert) if entry else "")
        self.key = QLineEdit(str(entry.key) if entry else "")
        form.addRow("Name", self.name)
        form.addRow("node1 agent", self.node1)
        form.addRow("node2 agent", self.node2)
        form.addRow("Cluster CA", self._with_browse(self.ca, "CA certificate (*.pem)"))
        form.addRow("Console certificate", self._with_browse(self.cert, "Certificate (*.pem)"))
        form.addRow("Console key", self._with_browse(self.key, "Key (*.key *.pem)"))
        self.passphrase = QLineEdit()
        self.passphrase.setEchoMode(QLineEdit.EchoMode.Password)
        self.passphrase.setPlaceholderText("only if the key is encrypted")
        form.addRow("Key passphrase", self.passphrase)
        self.keep = QCheckBox("Remember the passphrase in the OS keyring")
        if secrets.available():
            self.keep.setChecked(True)
        else:
            self.keep.setEnabled(False)
            self.keep.setToolTip(secrets.unavailable_message())
        form.addRow("", self.keep)
        layout.addLayout(form)
        if not secrets.available():
            warn = QLabel("⚠ " + secrets.unavailable_message())
            warn.setObjectName("keyringWarning")
            warn.setWordWrap(True)
            layout.addWidget(warn)
        self.error = QLabel("")
        self.error.setObjectName("nodeError")
        self.error.setWordWrap(True)
        layout.addWidget(self.error)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        importer = QPushButton("Import cluster.toml…")
        importer.clicked.connect(self._import)
        buttons.addButton(importer, QDialogButtonBox.ButtonRole.ResetRole)
        buttons.accepted.connect(self._save)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def _with_browse(self, field: QLineEdit, pattern: str) -> QWidget:
        row = QWidget()
        h = QHBoxLayout(row)
        h.setContentsMargins(0, 0, 0, 0)
        h.addWidget(field, 1)
        button = QPushButton("Browse…")
        button.clicked.connect(lambda: self._browse(field, pattern))
        h.addWidget(button)
        return row

    def _browse(self, field: QLineEdit, pattern: str) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a file", field.text(), pattern)
        if path:
            field.setText(path)

    def _import(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Cluster file", "", "Cluster (*.toml)")
        if not path:
            return
        try:
            e = entry_from_cluster_toml(
                Path(path),
                Path(self.cert.text() or "console.pem"),
                Path(self.key.text() or "console.key"),
            )
        except SettingsError as err:
            self.error.setText(str(err))
            return
        self.name.setText(e.name)
        self.node1.setText(e.node1)
        self.node2.setText(e.node2)
        self.ca.setText(str(e.ca))

    def _save(self) -> None:
        try:
            entry = make_entry(
                self.name.text().strip(),
                self.node1.text().strip(),
                self.node2.text().strip(),
                self.ca.text().strip(),
                self.cert.text().strip(),
                self.key.text().strip(),
            )
        except SettingsError as err:
            self.error.setText(str(err))
            return
        self.saved.emit(entry, self.passphrase.text(), self.keep.isChecked())
        self.accept()
