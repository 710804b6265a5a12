# main sweep point: 18% of events are celebrities (parallel data)
celeb_frac = 0.18
out_dir = 'out/celeb_18'
