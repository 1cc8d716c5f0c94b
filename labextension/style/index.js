import './base.css';
import './gradebook.css';
