"""Pages of the main window that are not the Writeback List: Mailings, the Dashboard (and the Constituent
lookup, which is :class:`writeback_console.ui.dialogs.constituent.ConstituentViewer` used as a page)."""
